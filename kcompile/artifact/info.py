"""An artifact's manifest as ``kcompile info`` prints it."""

from __future__ import annotations


def describe(manifest: dict) -> str:
    """The manifest as ``kcompile info`` prints it."""
    model, target, training = manifest["model"], manifest["target"], manifest["training"]
    lines = [
        f"artifact format {manifest['format_version']}, kcompile {manifest['kcompile_version']}, "
        f"created {manifest['created']}",
        f"model: {model['name']}  inputs {model['inputs']}  outputs {model['outputs']}  "
        f"policy {model.get('policy', 'float32')}",
        f"target: {target['arch']} {target['cpu']}; needs {' '.join(target['requires'])}",
        f"code: {manifest['library']['kind']} ({manifest['library']['runtime']})",
        f"optimizer: {manifest['optimizer']['class']} {manifest['optimizer']['config']}",
        f"training: {training['epochs_done']} epochs done, seed {training['seed']}, "
        f"batch size {training['batch_size']}",
        f"metrics: {', '.join(['loss', *manifest['metrics']])}",
    ]
    for kind, step in manifest["steps"].items():
        memory = step.get("memory") or {}
        inputs = ", ".join(
            f"{i['name']}: {i['type']}" for i in step["inputs"] if i["role"] == "data"
        )
        outputs = ", ".join(f"{o['name']}: {o['type']}" for o in step["outputs"])
        lines.append(f"step {kind}: graph sha256 {step['graph_sha256'][:16]}…")
        lines.append(f"  data inputs: {inputs}")
        lines.append(f"  outputs: {outputs}")
        if step.get("bf16_engine_products"):
            lines.append(
                f"  bf16 products: {step['bf16_engine_products']} on kc_bgemm or "
                "kc_sconv_bf16 (AMX-BF16 tiles where this CPU has them, else their "
                "portable paths)"
            )
        if memory:
            lines.append(
                f"  memory plan: arena {memory['arena_bytes']} bytes at batch {memory['batch']} "
                f"(one buffer per value: {memory['unplanned_bytes']})"
            )
    lines.append(f"members: {len(manifest['checksums'])}, each with its sha256")
    return "\n".join(lines)
