"""Write the fingerprint of a benchmark from a local copy: names, sizes and hashes of its images,
nothing of the images themselves (utils/fingerprints.py).

    python scripts/fingerprint_benchmarks.py --folder test/Rain100L --name "Rain100L test" \\
        --source "github KaneWANG0816/RGR rain100L/test/small" \\
        --output data/benchmarks/Rain100L_test.json

Every image under ``--folder`` (both sides of pairs) is named by its path relative to it. The
commands that made the committed files are in data/benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.fingerprints import fingerprint_folder, write_fingerprint  # noqa: E402
from utils.image_files import ImageReadError  # noqa: E402
from utils.outputs import check_writable_file  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, required=True, help="the local copy of the set")
    parser.add_argument("--name", required=True, help='what reports call it: "Rain100L test"')
    parser.add_argument(
        "--source", required=True, help="where the local copy came from (repository, commit)"
    )
    parser.add_argument("--output", type=Path, required=True, help="the .json file to write")
    args = parser.parse_args(argv)
    try:
        check_writable_file(args.output, "--output")  # before every image is hashed
        benchmark = fingerprint_folder(args.folder, args.name, args.source)
        if not benchmark.images:
            raise FileNotFoundError(f"--folder {args.folder}: no images")
        write_fingerprint(benchmark, args.output)
    except (FileNotFoundError, ImageReadError, OSError) as error:
        print(f"fingerprint_benchmarks.py: {error}", file=sys.stderr)
        return 2
    print(f"{args.output}: {args.name}, {len(benchmark.images)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
