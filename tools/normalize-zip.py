#!/usr/bin/env python3
"""Rewrite Lambda zips so that the same bootstrap always gives the same bytes.

cargo-lambda stamps each entry with the binary's mtime, so two builds of an
identical binary give different zips (and a needless redeploy, since the app
stack hashes the zip). Each zip is rewritten with exactly one entry,
`bootstrap`, mode 0755 (Unix), mtime = SOURCE_DATE_EPOCH (default and floor:
1980-01-01, the earliest time a zip can hold), deflate level 9, no extra
fields and no comment.

Usage: normalize-zip.py ZIP...   (prints "<sha256>  <zip>" for each)
"""
import hashlib
import os
import sys
import time
import zipfile

ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z


def normalize(path: str, epoch: int) -> str:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if names != ["bootstrap"]:
            sys.exit(f"error: {path} holds {names}, expected exactly ['bootstrap']")
        data = z.read("bootstrap")
    info = zipfile.ZipInfo("bootstrap", date_time=time.gmtime(max(epoch, ZIP_EPOCH))[:6])
    info.create_system = 3  # Unix, so that external_attr carries the mode
    info.external_attr = 0o100755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w") as z:
        z.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    os.replace(tmp, path)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main() -> None:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or ZIP_EPOCH)
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for path in sys.argv[1:]:
        print(f"{normalize(path, epoch)}  {path}")


if __name__ == "__main__":
    main()
