"""The runtime tree as everyone reads it: its entries (`registry`), the plugin env
(`plugin_env`, with the cron fast paths `envcache` and `listing`). Imports `core` and
`config`."""
