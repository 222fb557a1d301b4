# Spack recipe for mosixrun. Copy it into a Spack repository as
# packages/mosixrun/package.py, e.g.:
#   spack repo create myrepo && mkdir -p myrepo/packages/mosixrun
#   cp spack/package.py myrepo/packages/mosixrun/ && spack repo add myrepo
#   spack install mosixrun@main +tests
from spack.package import *


class Mosixrun(CMakePackage):
    """User-space MOSIX for Linux clusters: unmodified programs started on one
    node have their processes placed, checkpointed and migrated across the
    cluster, with no kernel patch, no root and no relinking. Provides
    mosixrun (an mpirun-compatible launcher), mosixctl and libmosix."""

    homepage = "https://github.com/mosixrun/mosixrun"
    git = "https://github.com/mosixrun/mosixrun.git"

    version("main", branch="main")

    variant("mpi", default=True,
            description="Build the Open MPI transport and the node daemon mosixd")
    variant("tests", default=False,
            description="Build the unit and integration tests (run them with ctest)")
    variant("bench", default=False, description="Build the benchmarks")

    depends_on("c", type="build")
    depends_on("cxx", type="build")
    depends_on("cmake@3.25:", type="build")
    depends_on("pkgconfig", type="build")

    depends_on("openmpi@4.1:", when="+mpi")
    depends_on("hwloc@2:")
    # Asio only, header-only (the daemons' event loops); no compiled Boost library.
    depends_on("boost@1.74:")
    depends_on("spdlog")
    depends_on("cli11")
    depends_on("nlohmann-json")
    depends_on("zstd")

    depends_on("googletest", type="test")
    depends_on("googletest", type="build", when="+tests")
    depends_on("python@3:", type="test")
    # Google Benchmark times runtime/core's hot paths (bench/core).
    depends_on("benchmark", type=("build", "link"), when="+bench")

    # The checkpoint restorer and the preload library use Linux system calls.
    requires("platform=linux", msg="mosixrun runs on Linux only")

    def cmake_args(self):
        return [
            self.define_from_variant("MOSIX_MPI", "mpi"),
            self.define_from_variant("MOSIX_TESTS", "tests"),
            self.define_from_variant("MOSIX_BENCH", "bench"),
            # Warnings are errors in development, not for compilers we never tried.
            self.define("MOSIX_WERROR", False),
        ]
