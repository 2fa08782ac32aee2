#!/usr/bin/env python3
"""Appends each line of stdin as a record, 1,000 lines a round trip, and
prints the seq range: python3 append_lines.py < events.log"""

import sys

import wald


def main() -> None:
    with wald.connect() as c:
        batch: list[bytes] = []
        first = last = 0
        for line in sys.stdin.buffer:
            batch.append(line.rstrip(b"\n"))
            if len(batch) == 1000:
                seqs = c.append_many(batch)
                first, last = first or seqs[0], seqs[-1]
                batch.clear()
        if batch:
            seqs = c.append_many(batch)
            first, last = first or seqs[0], seqs[-1]
        print(f"durable: seqs {first}..{last}" if last else "nothing to append")


if __name__ == "__main__":
    main()
