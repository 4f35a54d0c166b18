"""`python -m mhsft.chat_entry ARGS`: `swift infer ARGS` as an interactive chat that Ctrl-D ends cleanly.

ms-swift 4.6's chat loop reads each prompt with `input()`, so the end of input (Ctrl-D, or a closed pipe) ends
the chat in an EOFError traceback and exit 1, and the run is recorded as failed. Here it ends the chat: exit 0.
"""

from __future__ import annotations

import sys


def main() -> None:
    from swift.pipelines import infer_main

    try:
        infer_main(sys.argv[1:])
    except EOFError:
        print("\nend of input: chat ended", file=sys.stderr)


if __name__ == "__main__":
    main()
