"""cinder-ha: a Salt extension for an active/passive cinder-api under Pacemaker.

``pip install .`` installs the repository's ``_modules``, ``_states``, ``_engines`` and
``_runners`` (master side: the reactor's trust check) folders as the package
``saltext_cinder_ha`` (``modules``, ``states``, ...) and registers it under the
``salt.loader`` entry point group, so a minion finds them without ``saltutil.sync_all``.
The pure logic, ``_utils/cinder_ha_lib``, becomes the top-level package ``cinder_ha_lib``
that those modules import plainly. The formula way (``file_roots`` + ``saltutil.sync_all``)
uses the same folders straight from the repository: the sync copies ``cinder_ha_lib`` to
``<extension_modules>/utils``, which Salt's loader puts on ``sys.path``.
"""
from setuptools import setup

LOADER_DIRS = {"modules": "_modules", "states": "_states", "engines": "_engines", "runners": "_runners"}

setup(
    name="cinder-ha",
    version="0.1.0",
    description="Salt extension: highly available OpenStack Block Storage API (cinder-api) under Pacemaker",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=["saltext_cinder_ha", "cinder_ha_lib"] + [f"saltext_cinder_ha.{kind}" for kind in LOADER_DIRS],
    package_dir={"saltext_cinder_ha": "loader_package",  # not named like the package: no shadowing from the tree
                 "cinder_ha_lib": "_utils/cinder_ha_lib",
                 **{f"saltext_cinder_ha.{kind}": folder for kind, folder in LOADER_DIRS.items()}},
    include_package_data=False,
    install_requires=[
        # 3008.5 needs a certifi the index here lacks; 3008.4 is the same code.
        "salt>=3008.4,<3009",
        "pyinotify>=0.9.6",
        "keystoneauth1>=5.0",
    ],
    entry_points={
        # Package style, as saltext-* do: the loader looks for saltext_cinder_ha/modules, /states, ...
        "salt.loader": ["cinder_ha = saltext_cinder_ha"],
    },
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "Framework :: Salt",
        "Topic :: System :: Clustering",
    ],
)
