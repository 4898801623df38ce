"""Train one stage: `python tools/train.py --config configs/X.yaml [key=value ...]`."""
import argparse
import json

from ernie_tiny_distill.cli import exit_process, main_wrapper, quiet_paddlenlp, set_threads, setup_logging
from ernie_tiny_distill.config import load_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="YAML config file (see configs/)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.epochs=2 distill.temperature=2")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    setup_logging()

    def run() -> int:
        cfg = load_config(args.config, args.overrides)
        set_threads(cfg.train.num_threads, override=True)  # the config wins over an exported OMP_NUM_THREADS
        quiet_paddlenlp()
        from ernie_tiny_distill.train.stages import run_stage  # imports Paddle: after the thread count is set

        summary = run_stage(cfg)
        shown = {k: summary[k] for k in ("stage", "task", "metric_name", "best_dir", "params") if k in summary}
        for split in ("dev", "test", "teacher_dev"):
            if summary.get(split):
                shown[split] = {k: v for k, v in summary[split].items() if k != "per_class"}
        print(json.dumps(shown, indent=2))
        return 0

    return main_wrapper(run, args.debug)


if __name__ == "__main__":
    exit_process(main())  # data-parallel workers skip the interpreter teardown (see exit_process)
