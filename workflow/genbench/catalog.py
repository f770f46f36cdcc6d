"""The catalog: one explicit map per kind of plugin, and the one place that lists them.

Each entry names its implementation by import target (loaded when it is looked up, genbench.registry) and declares
what the workflow's rules need to schedule it. The Snakefile reads this module at parse time (in every job of a
cluster run too), so it imports nothing but genbench.registry: no torch, no implementation module. The config
schema's enums of these names are filled from here (genbench.config.validate_config).

Adding a generator family, a feature extractor, a text-image embedder, a reconstructor or a data set adapter: write
its module, add one entry below (and, for a family or a reconstructor with its own dependencies, its env file under
workflow/envs). Figures are registered in genbench.plots.registry, metrics in genbench.metrics.registry.

Which entries declare an env and GPUs: the generate rule (generator families) and the reconstruct_3d rule
(reconstructors) run one entry per job, so they take each entry's ``env`` (workflow/envs/{env}.yaml) and ``gpus``
(the job's ``gpu`` resource). The other kinds run side by side in jobs whose env and resources the rule fixes
(extractors and embedders: metrics.yaml; 2D adapters: data.yaml; 3D adapters: mesh.yaml), so their entries declare
neither (tests/test_envs.py checks every entry's imports against the env that runs it).
"""

from __future__ import annotations

from typing import Any

from .registry import Plugin, Registry

# per_steps: the family's sampler honours sampler.per_steps (genbench.gen2d.families.DiTFamily)
_DIT = frozenset({"per_steps"})
# photo_rgb: the model can take a photo without its mask (reconstructors.<name>.photo_input: rgb) and segments it
# itself, or not at all (genbench.recon3d.photos); SAM 3D takes the mask as an argument, the baselines need it
_RGB = frozenset({"photo_rgb"})

GENERATORS: Registry[Any] = Registry("generator family", {
    "sit": Plugin("genbench.gen2d.families:SiTGenerator", env="gen2d", gpus=1, traits=_DIT),
    "meanflow": Plugin("genbench.gen2d.families:MeanFlowGenerator", env="gen2d", gpus=1, traits=_DIT),
    "imeanflow": Plugin("genbench.gen2d.families:IMeanFlowGenerator", env="gen2d", gpus=1, traits=_DIT),
    "soflow": Plugin("genbench.gen2d.families:SoFlowGenerator", env="gen2d", gpus=1, traits=_DIT),
    "sd35": Plugin("genbench.gen2d.pipelines:SD35Generator", env="gen2d", gpus=1),
    "flux1": Plugin("genbench.gen2d.pipelines:Flux1Generator", env="gen2d", gpus=1),
    # upstream code pinned to a commit, in that code's own environment
    "rae": Plugin("genbench.gen2d.upstream:RAEGenerator", env="rae", gpus=1),
    "scale_rae": Plugin("genbench.gen2d.scale_rae:ScaleRAEGenerator", env="scale_rae", gpus=1),
})

# spatial: the extractor has an sFID layer (genbench.features.registry.Extractor.spatial_layer)
_SPATIAL = frozenset({"spatial"})

EXTRACTORS: Registry[Any] = Registry("feature extractor kind", {
    "miniworld_classifier": Plugin("genbench.features.registry:MiniworldClassifierExtractor", traits=_SPATIAL),
    "inception_tf": Plugin("genbench.features.registry:InceptionTFExtractor", traits=_SPATIAL),
    "dinov2": Plugin("genbench.features.registry:DinoV2Extractor"),
})

EMBEDDERS: Registry[Any] = Registry("text-image embedder kind", {
    "open_clip": Plugin("genbench.features.text_image:OpenCLIPEmbedder"),
    "hf_clip": Plugin("genbench.features.text_image:HFCLIPEmbedder"),
})

RECONSTRUCTORS: Registry[Any] = Registry("3D reconstructor kind", {
    # silhouette baselines and the ground-truth ceiling: CPU, the mesh env
    "ellipsoid": Plugin("genbench.recon3d.reconstructors:EllipsoidBaseline", env="mesh"),
    "extrude": Plugin("genbench.recon3d.reconstructors:ExtrudeBaseline", env="mesh"),
    "revolution": Plugin("genbench.recon3d.reconstructors:RevolutionBaseline", env="mesh"),
    "gt_resample": Plugin("genbench.recon3d.reconstructors:GroundTruthCeiling", env="mesh"),
    # the toy Diff2to3 trained by genbench (docs/diff2to3.md): CPU, the torch env of the metrics
    "diff2to3": Plugin("genbench.recon3d.diff2to3.reconstructor:Diff2to3Reconstructor", env="metrics"),
    # external image-to-3D models: each in its own env, on a GPU
    "trellis": Plugin("genbench.recon3d.external:TrellisReconstructor", env="trellis", gpus=1, traits=_RGB),
    "hi3dgen": Plugin("genbench.recon3d.external:Hi3DGenReconstructor", env="hi3dgen", gpus=1, traits=_RGB),
    "hunyuan3d21": Plugin("genbench.recon3d.external:Hunyuan3DReconstructor", env="hunyuan3d21", gpus=1, traits=_RGB),
    "direct3d": Plugin("genbench.recon3d.external:Direct3DReconstructor", env="direct3d", gpus=1, traits=_RGB),
    "triposg": Plugin("genbench.recon3d.external:TripoSGReconstructor", env="triposg", gpus=1, traits=_RGB),
    "sam3d": Plugin("genbench.recon3d.external:SAM3DReconstructor", env="sam3d", gpus=1),
    # Table 2's baselines: Shap-E through diffusers, the other four through their checkouts at a pinned commit
    "shap_e": Plugin("genbench.recon3d.shap_e:ShapEReconstructor", env="shap_e", gpus=1),
    "lgm": Plugin("genbench.recon3d.upstream3d:LGMReconstructor", env="lgm", gpus=1),
    "instantmesh": Plugin("genbench.recon3d.upstream3d:InstantMeshReconstructor", env="instantmesh", gpus=1),
    "gaussiananything": Plugin("genbench.recon3d.upstream3d:GaussianAnythingReconstructor", env="gaussiananything",
                               gpus=1),
    "3dtopia_xl": Plugin("genbench.recon3d.upstream3d:Topia3DXLReconstructor", env="3dtopia_xl", gpus=1),
})

# reconstructor kinds the pipeline can train itself (a reconstructor entry's ``train:``; rule train_reconstructor,
# in the diff2to3 env: torch + manifold3d for the solids' booleans): ``train(name, train_spec, seed, folder)``
RECONSTRUCTOR_TRAINERS: Registry[Any] = Registry("trainable 3D reconstructor kind", {
    "diff2to3": Plugin("genbench.recon3d.diff2to3.pipeline:train_weights"),
})

# 2D data sets (prepare_dataset); the config's "curated" data sets are written by the curation rules instead
ADAPTERS: Registry[Any] = Registry("data set adapter", {
    "miniworld": Plugin("genbench.data.registry:miniworld_adapter"),
    "imagenet_val": Plugin("genbench.data.imagenet:imagenet_val"),
    "imagenetv2": Plugin("genbench.data.imagenet:imagenetv2"),
    "relaionet": Plugin("genbench.data.imagenet:relaionet"),
    "adm_ref": Plugin("genbench.data.adm:adm_ref"),
})

# 3D data sets (prepare_3d): rendered objects and medical volumes
OBJECT_ADAPTERS: Registry[Any] = Registry("3D object data set adapter", {
    "procedural": Plugin("genbench.recon3d.objects:procedural"),
    "objaverse": Plugin("genbench.recon3d.objects:objaverse"),
    "toys4k": Plugin("genbench.recon3d.objects:toys4k"),
    "gso": Plugin("genbench.recon3d.objects:gso"),
    "animal3d": Plugin("genbench.recon3d.objects:animal3d"),
})

MEDICAL_ADAPTERS: Registry[Any] = Registry("3D medical data set adapter", {
    "nifti_folder": Plugin("genbench.recon3d.medical:nifti_folder"),
    "msd": Plugin("genbench.recon3d.medical:msd"),
    "btcv": Plugin("genbench.recon3d.medical:btcv"),
    "aeropath": Plugin("genbench.recon3d.medical:aeropath"),
    "duke_cspine": Plugin("genbench.recon3d.medical:duke_cspine"),
    "phantoms": Plugin("genbench.recon3d.medical:phantoms"),
})
