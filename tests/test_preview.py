"""The preview's drawing: each track's mask tinted with its colour, nothing else tinted."""

import numpy as np

from ram_core.io.palette import track_color_bgr8
from ram_core.video.preview import _MASK_ALPHA, draw_frame

NO_ROWS = {"track_id": np.zeros(0, np.int64)}


def test_masks_are_tinted_with_their_tracks_colours_and_only_there():
    bgr = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    labels = np.zeros((60, 80), np.uint16)
    labels[10:30, 5:15] = 3
    labels[40:55, 60:75] = 300  # ids past 255: long clips have them
    drawn = draw_frame(bgr, labels, np.zeros(0, np.int64), NO_ROWS, np.zeros((0, 24, 2)))
    for track_id in (3, 300):
        where = labels == track_id
        colour = np.array(track_color_bgr8(track_id), float)
        expected = _MASK_ALPHA * colour + (1 - _MASK_ALPHA) * bgr[where].astype(float)
        assert np.abs(drawn[where].astype(float) - expected).max() <= 1.0
    np.testing.assert_array_equal(drawn[labels == 0], bgr[labels == 0])
    np.testing.assert_array_equal(draw_frame(bgr, np.zeros_like(labels), [], NO_ROWS, None), bgr)
