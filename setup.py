"""Build hook: generate lotledger.v1 from proto/ with grpcio-tools whenever setuptools builds.

Generated code is a build product, never committed or edited by hand. The hook writes the
modules into `_generated/lotledger/v1` (git-ignored), which pyproject.toml maps to the package
`lotledger.v1`, before setuptools reads its configuration. So a normal install copies them into the
wheel, and an editable install (`pip install -e '.[test]'`) imports them, like every other
part, from the working tree. Run the install again after changing a .proto file.
"""

from __future__ import annotations

import pathlib

from setuptools import setup

ROOT = pathlib.Path(__file__).parent
PROTO_ROOT = ROOT / "proto"
GENERATED = ROOT / "_generated"


def generate(out: pathlib.Path) -> None:
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


# Before setup(): setuptools checks that every package directory exists while it reads the
# configuration, before any command (build_py, editable_wheel) runs.
generate(GENERATED)
setup()
