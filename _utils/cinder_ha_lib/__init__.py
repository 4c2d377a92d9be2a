"""
The pure logic of cinder-ha: no Salt, no I/O of its own.

The execution and state modules, the engine and the reactor's runner import it plainly
(``from cinder_ha_lib import cib``). ``pip install .`` installs it as a top-level package;
in formula mode ``saltutil.sync_all`` copies it to ``<extension_modules>/utils/cinder_ha_lib``
and Salt's loader puts ``<extension_modules>/utils`` on ``sys.path`` while it loads modules.

- ``cib``: the Pacemaker objects of the pillar, rendered and compared;
- ``conf``: the cinder.conf migration and plan;
- ``catalog``: the Keystone endpoint plan;
- ``pillar``: validation and normalization of the ``cinder_ha`` pillar;
- ``secret_rule``: what is a secret and how it is masked;
- ``urls``: URL building (hosts, endpoint forms, database and broker URLs);
- ``events``: the event tags and fields shared by engine, module and reactor;
- ``probe``: the one HTTP probe;
- ``delivery``: the engine's acknowledged delivery;
- ``errors``: typed exceptions.
"""
