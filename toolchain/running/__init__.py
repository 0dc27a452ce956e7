"""Running installed plugins: cron jobs, daemons under supervisord, autorestart. Imports
`core`, `config` and `runtime`; never `build` nor `installer`."""
