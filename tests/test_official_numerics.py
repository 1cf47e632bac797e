"""official_numerics: CLIP-ES in float32 gives the official code's bits; the float64 default is unchanged.

The references below are transcriptions written here from reading the official
``clip_as_rnn/modeling/model/clipcam.py`` (the refinement in ``CLIPCAM.__call__``),
``modeling/model/cam.py`` (``scale_cam_image``) and ``modeling/model/utils.py``
(``scoremap2bbox``): the same torch and numpy calls, in the same order, one CAM at
a time.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from carlib.clip_es import affinity_from_attention, clip_es_refine, sinkhorn
from carlib.proposals import GradCamProposals
from carlib.settings import CarSettings


def official_boxes(scoremap: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """``scoremap2bbox(scoremap, threshold, multi_contour_eval=True)`` as the official code reads."""
    height, width = scoremap.shape
    scoremap_image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)
    while True:
        _, binary = cv2.threshold(src=scoremap_image, thresh=int(threshold * np.max(scoremap_image)), maxval=255,
                                  type=cv2.THRESH_BINARY)
        if binary.max() > 0 or threshold <= 0:
            break
        threshold -= 0.1
    contours = cv2.findContours(image=binary, mode=cv2.RETR_TREE, method=cv2.CHAIN_APPROX_SIMPLE)[0]
    if not contours:
        return np.asarray([[0, 0, 0, 0]]), 1
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    return np.asarray(boxes), len(contours)


def official_refinement(grayscale_cam: np.ndarray, attn_weight: torch.Tensor, threshold: float,
                        ori_width: int, ori_height: int) -> np.ndarray:
    """One query's CLIP-ES refinement, in the official order (float32 torch, then numpy min-max, cv2 resize)."""
    box, cnt = official_boxes(grayscale_cam, threshold)
    aff_mask = torch.zeros((grayscale_cam.shape[0], grayscale_cam.shape[1]))
    for i in range(cnt):
        x0, y0, x1, y1 = box[i]
        aff_mask[y0:y1, x0:x1] = 1
    aff_mask = aff_mask.view(1, grayscale_cam.shape[0] * grayscale_cam.shape[1])
    aff_mat = attn_weight
    trans_mat = aff_mat / torch.sum(aff_mat, dim=0, keepdim=True)
    trans_mat = trans_mat / torch.sum(trans_mat, dim=1, keepdim=True)
    for _ in range(2):
        trans_mat = trans_mat / torch.sum(trans_mat, dim=0, keepdim=True)
        trans_mat = trans_mat / torch.sum(trans_mat, dim=1, keepdim=True)
    trans_mat = (trans_mat + trans_mat.transpose(1, 0)) / 2
    for _ in range(1):
        trans_mat = torch.matmul(trans_mat, trans_mat)
    trans_mat = trans_mat * aff_mask
    cam_to_refine = torch.FloatTensor(grayscale_cam).view(-1, 1)
    cam_refined = torch.matmul(trans_mat, cam_to_refine).reshape(*grayscale_cam.shape)
    img = cam_refined.cpu().numpy().astype(np.float32)
    img = img - np.min(img)
    img = img / (1e-15 + np.max(img))
    return np.float32([cv2.resize(img, (ori_width, ori_height))])[0]


def numpy_refinement(cams: np.ndarray, attention: np.ndarray, threshold: float, dtype) -> np.ndarray:
    """carlib's numpy CLIP-ES as it was before this change (float64: still the default; float32: the old option)."""
    from carlib.cam import minmax_normalize
    from carlib.clip_es import box_mask

    matrix = attention.astype(dtype)
    for _ in range(3):
        matrix = matrix / matrix.sum(axis=0, keepdims=True)
        matrix = matrix / matrix.sum(axis=1, keepdims=True)
    affinity = (matrix + matrix.T) / 2.0
    affinity = affinity @ affinity
    refined = np.zeros_like(cams)
    for index in range(len(cams)):
        boxes, _ = box_mask(cams[index], threshold)
        refined[index] = ((affinity * boxes.reshape(1, -1)) @ cams[index].reshape(-1).astype(dtype)).reshape(
            cams.shape[1:])
    return minmax_normalize(torch.from_numpy(refined)).numpy()


@pytest.fixture(scope="module")
def small_case():
    """A 9 x 11 patch grid: head-averaged softmax attention and three CAMs with hot blobs, float32."""
    rng = np.random.default_rng(7)
    height, width = 9, 11
    logits = torch.from_numpy(rng.normal(scale=2.0, size=(4, height * width, height * width)).astype(np.float32))
    attention = logits.softmax(dim=-1).mean(dim=0).numpy()
    rows, cols = np.mgrid[:height, :width]
    cams = []
    for row, col, spread in [(2, 3, 2.0), (6, 8, 1.5), (4, 5, 3.0)]:
        blob = np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * spread**2)) + 0.2 * rng.random((height, width))
        cams.append((blob - blob.min()) / (blob.max() - blob.min()))
    return np.asarray(cams, dtype=np.float32), attention


def test_float32_clip_es_is_the_official_order_bit_for_bit(small_case):
    cams, attention = small_case
    ours = clip_es_refine(cams, attention, threshold=0.4, output_size=(45, 60), dtype=np.float32)
    theirs = np.stack([official_refinement(cam, torch.from_numpy(attention), 0.4, 60, 45) for cam in cams])
    assert ours.dtype == np.float32 and ours.shape == (3, 45, 60)
    np.testing.assert_array_equal(ours, theirs)
    # The old float32 path (numpy sums and products) rounds differently: the test can tell them apart.
    old = numpy_refinement(cams, attention, 0.4, np.float32)
    old = np.stack([cv2.resize(map_, (60, 45)) for map_ in old])
    assert np.abs(old - theirs).max() > 0


def test_float32_sinkhorn_and_affinity_are_torch_in_the_official_order(small_case):
    _, attention = small_case
    matrix = torch.from_numpy(attention)
    for _ in range(3):
        matrix = matrix / torch.sum(matrix, dim=0, keepdim=True)
        matrix = matrix / torch.sum(matrix, dim=1, keepdim=True)
    np.testing.assert_array_equal(sinkhorn(attention, dtype=np.float32), matrix.numpy())
    symmetric = (matrix + matrix.transpose(1, 0)) / 2
    np.testing.assert_array_equal(affinity_from_attention(attention, dtype=np.float32),
                                  torch.matmul(symmetric, symmetric).numpy())


def test_the_float64_default_is_unchanged(small_case):
    cams, attention = small_case
    ours = clip_es_refine(cams, attention, threshold=0.4)
    np.testing.assert_array_equal(ours, numpy_refinement(cams, attention, 0.4, np.float64))
    assert affinity_from_attention(attention).dtype == np.float64


def test_the_proposal_stage_refines_as_the_official_code_with_official_numerics(vit_b16, noise_image):
    settings = CarSettings(official_numerics=True, clipes_threshold=0.4)
    stage = GradCamProposals(vit_b16)
    queries = ["a cat", "a red car", "the sky"]
    maps = stage.propose(noise_image, queries, settings)
    work = stage.image_work(noise_image, 8, official_numerics=True)
    assert work.affinity.dtype == np.float32
    grid = stage.maps(work, stage.texts.embed(queries), stage.background_embeddings(()), settings).cams
    height, width = noise_image.shape[:2]
    theirs = np.stack([official_refinement(cam, torch.from_numpy(work.attention), 0.4, width, height)
                       for cam in grid])
    np.testing.assert_array_equal(maps.proposals, theirs)
    default = stage.propose(noise_image, queries, settings.replace(official_numerics=False))
    assert 0 < np.abs(default.proposals - maps.proposals).max() < 5e-2
