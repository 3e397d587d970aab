"""The local stack: Kafka, PostgreSQL and a schema registry as plain processes under a state
dir (``DA_STATE_DIR``, default ``./.da``), no Docker. ``da stack up`` writes their connection
settings to the stack file, which ``Settings.load`` reads for every variable the environment
leaves unset, so after it every other command just works.

One module per server (``kafka``, ``postgres``, ``registry``), what they share with processes
and ports (``procs``) and with Maven (``fetch``); ``control`` runs them together and
``commands`` is ``da stack``.
"""
