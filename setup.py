"""The packages, and the one compiled module.

Packages: curate/ as `curate`, filters/ as `curate_filters` and pipelines/ as `curate_pipelines` (a package-dir
mapping: the folders keep their names, the import names are curate's own; `filters` and `pipelines` are other
distributions on PyPI).

The compiled module: filters/extraction/fast/_walk.pyx, fast_extract's walk over libxml2's nodes (Cython, against the
lxml headers). Everything else is in pyproject.toml.

The build is optional. Where Cython or a C compiler is missing or the build fails, the install goes on with a
warning and fast_extract runs tree._walk, the same walk in Python: the same text, about a quarter slower.
"""

from setuptools import Extension, find_namespace_packages, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # noqa: BLE001 - any failure to build leaves the Python walk
            self.warn(f"fast_extract's compiled walk was not built ({e}); it runs in Python instead")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001
            self.warn(f"{ext.name} was not built ({e}); fast_extract runs its walk in Python instead")


def extensions() -> list[Extension]:
    try:
        import lxml
        from Cython.Build import cythonize
    except ImportError as e:
        print(f"warning: fast_extract's compiled walk is not built ({e}); it runs in Python instead")
        return []
    ext = Extension(
        "curate_filters.extraction.fast._walk", ["filters/extraction/fast/_walk.pyx"], include_dirs=lxml.get_include()
    )
    try:
        return cythonize([ext], compiler_directives={"language_level": 3}, quiet=True)
    except Exception as e:  # noqa: BLE001
        print(f"warning: fast_extract's compiled walk is not built ({e}); it runs in Python instead")
        return []


# Namespace packages too: the data folders (curate/data, filters/data/ldnoobw, ...) have no __init__.py, and their
# files ship as those packages' data (pyproject.toml's package-data).
_SKIP = ["*__pycache__*"]
PACKAGES = (
    find_namespace_packages(include=["curate", "curate.*"], exclude=_SKIP)
    + ["curate_filters"]
    + [f"curate_filters.{p}" for p in find_namespace_packages("filters", exclude=_SKIP)]
    + ["curate_pipelines"]
)
PACKAGE_DIR = {"curate_filters": "filters", "curate_pipelines": "pipelines"}

setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    ext_modules=extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
)
