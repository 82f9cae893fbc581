"""Build hook: generate lotledger.v1 from proto/ with grpcio-tools during build_py.

Generated code is a build product, never committed or edited by hand. The hook writes the
modules straight into the build directory, so the wheel carries them and the source tree
stays clean. (An editable install would not see them: install with `pip install .`.)
"""

from __future__ import annotations

import pathlib

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = pathlib.Path(__file__).parent
PROTO_ROOT = ROOT / "proto"


class BuildWithProtos(build_py):
    def run(self) -> None:
        super().run()
        self._generate(pathlib.Path(self.build_lib))

    def _generate(self, out: pathlib.Path) -> None:
        import grpc_tools
        from grpc_tools import protoc

        protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
        if not protos:
            raise RuntimeError("no .proto files under proto/")
        out.mkdir(parents=True, exist_ok=True)
        well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed: {' '.join(args)}")
        for package_dir in {(out / p).parent for p in protos}:
            (package_dir / "__init__.py").touch()
            (package_dir / "py.typed").touch()


setup(cmdclass={"build_py": BuildWithProtos})
