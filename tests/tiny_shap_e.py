"""A tiny random Shap-E img2img pipeline, built offline and saved with ``save_pretrained`` in the layout of
openai/shap-e-img2img (model_index.json + prior, image_encoder, image_processor, scheduler, shap_e_renderer), for
the Shap-E adapter's loading test. Component sizes as in diffusers' own ShapEImg2Img fast tests.

Two things a random renderer lacks for ``output_type="mesh"`` (diffusers' fast tests only render images):

* the marching-cubes lookup table: ``MeshDecoder`` registers ``cases`` / ``masks`` as zero buffers and the real
  checkpoint fills them. Here the table is derived from scikit-image's classic (Lorensen) marching cubes run on
  each of the 256 sign patterns of one cube, its vertices (edge midpoints) mapped onto the 12 edges in the order
  the decoder indexes them (``_create_flat_edge_indices``);
* a surface: the SDF head of the renderer's last (unprojected) layer gets zero weights and a positive bias, so the
  field is positive inside the volume and the decoder's forced -1 border closes it: a box, coloured by the random
  colour head.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def marching_cubes_table() -> tuple[torch.Tensor, torch.Tensor]:
    """(cases [256, 5, 3] edge indices, masks [256, 5]) in the convention of diffusers' shap_e MeshDecoder: corner
    (x, y, z) of a cube is bit x + 2y + 4z of the case, inside is field > 0."""
    from diffusers.pipelines.shap_e.renderer import _create_flat_edge_indices
    from skimage import measure

    g = (2, 2, 2)
    corners = torch.stack(torch.meshgrid(*[torch.arange(2.0)] * 3, indexing="ij"), -1)
    mids = torch.cat([((corners[:-1] + corners[1:]) / 2).reshape(-1, 3),
                      ((corners[:, :-1] + corners[:, 1:]) / 2).reshape(-1, 3),
                      ((corners[:, :, :-1] + corners[:, :, 1:]) / 2).reshape(-1, 3)])
    edge_pos = mids[_create_flat_edge_indices(torch.zeros(1, 3, dtype=torch.long), g)[0]].numpy()  # [12, 3]
    cases = torch.zeros(256, 5, 3, dtype=torch.long)
    masks = torch.zeros(256, 5, dtype=torch.bool)
    for case in range(1, 255):
        field = np.array([[[1.0 if case >> (x + 2 * y + 4 * z) & 1 else -1.0 for z in range(2)] for y in range(2)]
                          for x in range(2)])
        verts, faces, _, _ = measure.marching_cubes(field, 0.0, method="lorensen")
        edge = [int(np.flatnonzero(np.abs(edge_pos - v).sum(1) < 1e-6)[0]) for v in verts]
        tris = [[edge[i] for i in f] for f in faces]
        if len(tris) > 5:
            raise AssertionError(f"case {case}: {len(tris)} triangles (the decoder's table holds 5)")
        cases[case, :len(tris)] = torch.tensor(tris)
        masks[case, :len(tris)] = True
    return cases, masks


def save_tiny_shap_e(folder: Path) -> Path:
    from diffusers import HeunDiscreteScheduler, PriorTransformer, ShapEImg2ImgPipeline
    from diffusers.pipelines.shap_e import ShapERenderer
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, image_size=32, projection_dim=32, intermediate_size=37,
                                               num_attention_heads=4, num_channels=3, num_hidden_layers=2,
                                               patch_size=4)).eval()
    processor = CLIPImageProcessor(crop_size=32, do_center_crop=True, do_normalize=True, do_resize=True, size=32,
                                   image_mean=[0.48145466, 0.4578275, 0.40821073],
                                   image_std=[0.26862954, 0.26130258, 0.27577711], resample=3)
    prior = PriorTransformer(num_attention_heads=2, attention_head_dim=16, embedding_dim=32, num_embeddings=32,
                             embedding_proj_dim=32, time_embed_dim=128, num_layers=1, clip_embed_dim=64,
                             additional_embeddings=0, time_embed_act_fn="gelu", norm_in_type="layer",
                             embedding_proj_norm_type="layer", encoder_hid_proj_type=None, added_emb_type=None).eval()
    renderer = ShapERenderer(param_shapes=((8, 93), (8, 8), (8, 8), (8, 8)), d_latent=32, d_hidden=8, n_output=12,
                             background=(0.1, 0.1, 0.1)).eval()
    cases, masks = marching_cubes_table()
    with torch.no_grad():
        renderer.mesh_decoder.cases.copy_(cases)
        renderer.mesh_decoder.masks.copy_(masks)
        head = renderer.mlp.mlp[-1]  # output 0 is the SDF (MLPNeRSTFModel.map_indices_to_keys)
        head.weight[0].zero_()
        head.bias[0] = 1.0
    scheduler = HeunDiscreteScheduler(beta_schedule="exp", num_train_timesteps=1024, prediction_type="sample",
                                      use_karras_sigmas=True, clip_sample=True, clip_sample_range=1.0)
    pipe = ShapEImg2ImgPipeline(prior=prior, image_encoder=encoder, image_processor=processor, scheduler=scheduler,
                                shap_e_renderer=renderer)
    pipe.save_pretrained(str(folder))
    return folder
