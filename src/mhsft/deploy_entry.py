"""`python -m mhsft.deploy_entry ARGS`: `swift deploy ARGS` with the server's API key taken from the environment.

ms-swift 4.6 reads the deploy API key only from `--api_key`, which every user on the machine can read in `ps`.
This entry point appends it to swift's in-process argument list instead, from MHSFT_DEPLOY_API_KEY.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    key = os.environ.pop("MHSFT_DEPLOY_API_KEY", "")
    from swift.pipelines import deploy_main

    deploy_main([*sys.argv[1:], *(["--api_key", key] if key else [])])


if __name__ == "__main__":
    main()
