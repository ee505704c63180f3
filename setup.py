"""usermodel-tfx: user-interest models for recommendation on TFX (see README.md)."""

import setuptools

setuptools.setup(
    name="usermodel-tfx",
    version="0.1.0",
    description="TFX pipelines that train, gate and serve user-interest models for recommendation.",
    python_requires=">=3.11,<3.12",
    packages=setuptools.find_packages(include=["pipeline*", "trainer*", "components*", "serving*"]),
    package_data={"pipeline": ["schemas/*.pbtxt", "configs/*.yaml"]},
    entry_points={"console_scripts": ["usermodel=pipeline.cli:main"]},
)
