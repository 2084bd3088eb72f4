"""The `garden` command line (also `python -m garden`).

    garden list [--domain D] [--task T] [--modality M] [--family F]
                [--paper P] [--catalogue]
    garden info NAME [--preset P]
    garden train NAME --preset P --data D [--steps N | --epochs E]
                 [--strategy default|mirrored|multi_worker] --out DIR
    garden eval PATH --data D [--split test]
    garden export PATH --format saved_model|tflite|onnx [--quantize int8]
    garden bench NAME [--compare-torch]
"""

import argparse
import json
import os
import sys


def _cmd_list(args):
    import garden

    if args.catalogue:
        from garden import model_table

        print(model_table.catalogue_table())
        return 0
    names = garden.list_models(domain=args.domain, modality=args.modality,
                               task=args.task, family=args.family,
                               paper=args.paper)
    print(f"{'model':22s} {'paper params':>13s}  {'tags':64s} presets")
    for name in names:
        entry = garden.get_entry(name)
        params = entry.presets["paper"].get("params")
        tags = ", ".join(f"{k}={v}" for k, v in sorted(entry.tags.items())
                         if k in ("domain", "task", "modality"))
        shown = f"{params:,}" if params else "-"
        print(f"{name:22s} {shown:>13s}  {tags:64s} "
              f"{','.join(entry.presets)}")
    return 0


def _cmd_info(args):
    import garden

    info = garden.preset_info(args.name, args.preset)
    entry = garden.get_entry(args.name)
    print(json.dumps({"model": args.name, "class": entry.cls.__name__,
                      "tags": entry.tags,
                      "export_unsupported": entry.export_unsupported,
                      "preset": args.preset, **info}, indent=2,
                     default=str))
    return 0


def _cmd_train(args):
    from garden import train as train_lib

    metrics = train_lib.train(
        args.name, preset=args.preset, data=args.data, out_dir=args.out,
        steps=args.steps, epochs=args.epochs, batch_size=args.batch_size,
        strategy=args.strategy, learning_rate=args.learning_rate,
        jit_compile=args.jit_compile, seed=args.seed,
        data_dir=args.data_dir, config_overrides=_parse_sets(args.set))
    print(json.dumps(metrics, indent=2, default=str))
    return 0


def _parse_sets(items):
    """["num_classes=10", "mask_ratio=0.6"] -> dict with Python literals."""
    import ast

    overrides = {}
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE; got '{item}'.")
        key, value = item.split("=", 1)
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    return overrides


def _cmd_eval(args):
    from garden import train as train_lib

    metrics = train_lib.evaluate(args.path, data=args.data, split=args.split,
                                 batch_size=args.batch_size,
                                 data_dir=args.data_dir)
    print(json.dumps(metrics, indent=2, default=str))
    return 0


def _cmd_export(args):
    from garden import export_cli

    report = export_cli.export_file(args.path, fmt=args.format,
                                    out=args.out, quantize=args.quantize,
                                    data=args.data, samples=args.samples)
    print(json.dumps(report, indent=2, default=str))
    return 0


def _cmd_bench(args):
    from garden import bench

    import garden  # noqa: F401  (registers the models)

    bench.run(args.name, preset=args.preset, batch_size=args.batch_size,
              steps=args.steps, warmup=args.warmup,
              compare_torch=args.compare_torch, rounds=args.rounds,
              round_s=args.round_seconds)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="garden", description=__doc__,
                                     formatter_class=argparse.
                                     RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "list", help="registered models, filtered by the taxonomy "
        "(official/taxonomy.py: the applications survey's domains and tasks)")
    p.add_argument("--domain", help="nlp, vision, multimodal, audio, signal")
    p.add_argument("--task")
    p.add_argument("--modality")
    p.add_argument("--family", help="the garden's paper family")
    p.add_argument("--paper", help="paper slug")
    p.add_argument("--catalogue", action="store_true",
                   help="print every paper by domain and task, with its "
                   "registered models")
    p.set_defaults(fn=_cmd_list)

    p = sub.add_parser("info", help="one model preset as JSON")
    p.add_argument("name")
    p.add_argument("--preset", default="tiny")
    p.set_defaults(fn=_cmd_info)

    p = sub.add_parser("train", help="train a model on an offline dataset")
    p.add_argument("name")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--data", required=True)
    p.add_argument("--data-dir", default=None,
                   help="root folder for file-backed datasets")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--strategy", default="default",
                   choices=["default", "mirrored", "multi_worker", "tpu"])
    p.add_argument("--jit-compile", action="store_true")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a preset config value (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a saved .keras model")
    p.add_argument("path")
    p.add_argument("--data", required=True)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(fn=_cmd_eval)

    p = sub.add_parser("export", help="export a saved .keras model")
    p.add_argument("path")
    p.add_argument("--format", required=True,
                   choices=["saved_model", "tflite", "onnx"])
    p.add_argument("--quantize", choices=["dynamic", "int8"], default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--data", default=None,
                   help="dataset for int8 calibration/agreement (default: "
                        "the model's example inputs)")
    p.add_argument("--samples", type=int, default=200)
    p.set_defaults(fn=_cmd_export)

    p = sub.add_parser("bench", help="training throughput (or 'attention')")
    p.add_argument("name")
    p.add_argument("--preset", default="bench")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compare-torch", action="store_true",
                   help="time HF ViTMAE too, in alternating paired rounds")
    p.add_argument("--rounds", type=int, default=8,
                   help="paired rounds with --compare-torch")
    p.add_argument("--round-seconds", type=float, default=4.0,
                   help="seconds per implementation per paired round")
    p.set_defaults(fn=_cmd_bench)
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["bench", "attention"]:
        # The attention bench has its own options (lengths, kernels, ...).
        from official.attention import bench as attention_bench

        return attention_bench.main(argv[2:])
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"garden {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
