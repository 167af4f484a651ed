"""``streamfit server``: the JSON API (and the dashboard) over the job store; see
:mod:`streamfit.server.app`."""
