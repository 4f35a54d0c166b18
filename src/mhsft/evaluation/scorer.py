"""`python -m mhsft.evaluation.scorer < SPEC.json`: one EvalScope run against a served model, as `swift eval`
builds it for the Native backend (`TaskConfig` with the OpenAI-compatible URL, `run_task`), in its own process.

ms-swift 4.6's `swift eval` cannot run with EvalScope 1.x alone: its argument check lists OpenCompass' datasets
(which needs ms-opencompass, pinning numpy 1.x) and it passes `EvalType.SERVICE`, which EvalScope 1.x renamed to
`openai_api`. So mhsft deploys with `swift deploy` and scores with EvalScope here, as `swift eval` does inside.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    spec = json.load(sys.stdin)
    from evalscope.run import TaskConfig, run_task

    run_task(
        TaskConfig(
            model=spec["model"],
            model_id=spec["model_id"],
            eval_type="openai_api",
            api_url=spec["api_url"],
            api_key="EMPTY",
            datasets=spec["datasets"],
            dataset_args=spec["dataset_args"],
            limit=spec["limit"],
            generation_config=spec["generation_config"],
            eval_batch_size=spec["eval_batch_size"],
            work_dir=spec["work_dir"],
            no_timestamp=True,
            **spec["extra"],
        )
    )


if __name__ == "__main__":
    main()
