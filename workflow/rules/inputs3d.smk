# 3D track inputs: medical volumes (and, later, object renders) -> single-slice inputs in the legacy and corrected
# protocols, ground-truth surfaces / samples / occupancy, and a manifest with skipped items and their reasons.


rule prepare_3d:
    output:
        manifest=layout.manifest3d("{dataset3d}"),
        item_dir=directory(layout.items3d("{dataset3d}")),
    log:
        layout.log("prepare_3d", "{dataset3d}"),
    benchmark:
        layout.benchmark("prepare_3d", "{dataset3d}")
    conda:
        "../envs/mesh.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=lambda wc: wiring.prepare3d_runtime(wc.dataset3d),
        gpu=lambda wc: wiring.prepare3d_gpus(wc.dataset3d),  # SAM 2's automatic masks of the seed's photos
    params:
        config=lambda wc: wiring.dataset3d_config(wc.dataset3d),
    script:
        "../scripts/prepare_3d.py"
