"""`python -m catdog.report DIR`: one table and plots for every run under a run or multirun directory."""

import argparse

from catdog.analysis.report import write_report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m catdog.report", description=__doc__)
    parser.add_argument("dir", help="a run or multirun directory (searched recursively)")
    parser.add_argument("--out", help="where to write the report (default: DIR)")
    args = parser.parse_args(argv)
    print(write_report(args.dir, args.out).read_text())


if __name__ == "__main__":
    main()
