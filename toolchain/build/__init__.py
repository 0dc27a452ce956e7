"""The developer's side: templates, freezing, the wheelhouse and `make release`. Imports the
shared layers (`core`, `artifact`, `config`, `localenv`, `runtime`); nothing of the
operator's side imports it."""
