"""The single-file bundle, `afbox.run`: a POSIX sh stub, a manifest, per-file sha256 checksums and a
compressed tree holding a real CPython (Debian's), afbox with every wheel it needs installed into it,
and the XRootD server side (Debian's), with relative library paths. The first run checks the file and
unpacks it once into ${AFBOX_HOME:-~/.cache/afbox}/rt/<sha256>/; later runs start from there.

build.py makes it (debs.py, wheels.py, elf.py), layout.py is the file format, stub.sh and unpack.py
run on the target, inspect.py says what is inside, runtime.py is what changes when afbox runs from it.
"""
