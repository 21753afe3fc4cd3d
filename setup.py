"""Only what pyproject.toml cannot say: the shipped models (``assets/models``, outside the package folder) install
as the package-data folder ``genimg/shipped_models``, where ``genimg.assets`` finds them; every ``genimg.*``
subpackage is found automatically. Everything else is in pyproject.toml."""
from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["genimg", "genimg.*"]), "genimg.shipped_models"],
    package_dir={"genimg.shipped_models": "assets/models"},
    package_data={"genimg.shipped_models": ["**/*.safetensors", "**/*.json", "**/*.md"]},
)
