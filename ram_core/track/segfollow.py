"""SegFollow: multi-person mask tracking steered by a Kalman motion prior (RAM, sec. 3.1).

Independent of which segmenter feeds it: each frame the segmenter proposes person masks
near every track's Kalman-predicted box (and near new detections), and SegFollow decides
who is who with the fused score

    s_fused = alpha * s_mask + (1 - alpha) * s_kf,

s_mask being the segmenter's affinity of a candidate to the track's memory and s_kf the IoU
of the Kalman-predicted box with the candidate's mask box. Assignment across people is
Hungarian on ``1 - s_fused``. The Kalman term only counts once the track has had
``tau_kf`` reliable frames in a row (confidence gate; frames where the person is hidden
neither count nor break the row); only reliable frames correct the
Kalman state; the track memory is an EMA whose decay rises as the Kalman consistency falls,
frozen when the segmenter says nobody is there.

A segmenter may propose several candidates per prompt (SAM2 gives three per person): the
Hungarian assignment over all of them both picks one person's mask among their candidates
(SAMURAI's motion-aware selection) and decides who is who. De-duplication therefore only
compares candidates of different prompts: one prompt's alternatives overlap by design.

A ``MemorySegmenter`` (SAM2) answers a track's own prompt from that person's memory, so
s_mask of such a candidate is the segmenter's own confidence (its quality); candidates of
other prompts are scored, as for any segmenter, by quality times appearance similarity to
the track. With alpha = 1 the track then takes its segmenter's best candidate: stock SAM2.
SegFollow tells it which candidate each person got (``commit``: births as the prompt frame,
hits with the EMA decay and the admission decision) and which tracks are gone (``forget``,
also called on segmenters that have only that hook, such as the MediaPipe one).
Detection prompts carry the detector's keypoints above ``prompt_keypoint_min_score`` that
lie in the frame as positive point prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from ram_core.detect.boxes import (
    box_area,
    clip_box,
    intersection_matrix,
    iou_matrix,
    mutual_best_matches,
    union_box,
    xyah_to_xyxy,
    xyxy_to_xyah,
)
from ram_core.detect.keypoint_rcnn import COCO_KEYPOINTS, PROMPT_KEYPOINTS
from ram_core.track import kalman
from ram_core.types import (
    Detection,
    Frame,
    MemorySegmenter,
    Observation,
    Prompt,
    Segmenter,
    TrackFrame,
)

_INFEASIBLE = 1e6
TORSO_LANDMARKS = (11, 12, 23, 24)
"""BlazePose's shoulders and hips."""
ANKLE_LANDMARKS = (27, 28)
"""BlazePose's ankles."""
FEET_MIN_VISIBILITY = 0.5
"""Both ankles' visibility (BlazePose's, 0.5 being MediaPipe's usual cut) at which a whole
view shows where the person stands: below it the pose guesses the feet."""
DEFAULT_FPS = 30.0
"""The frame rate a tracker assumes when it is not told the video's."""


@dataclass(frozen=True)
class SegFollowConfig:
    """Every threshold of the tracker. Defaults from NOTES-method.md (SAMURAI, PHALP)."""

    alpha: float = 0.75
    """Weight of s_mask in s_fused; SAMURAI's motion weight 0.25 for hiera t/s/b+."""
    tau_kf: int = 15
    """Reliable frames in a row before the Kalman term enters s_fused. An unreliable view
    breaks the row; frames where nobody is found do not (``_miss``): a hidden person's
    Kalman state is coasted, not taught by a bad view, and a track whose motion term went
    away while the person hid would outscore, on appearance alone, the look-alike in front
    of them, whose score still counts how far their mask is from their predicted box. With
    the row broken by hiding, the far one of two look-alikes crossing took the near one's
    mask as they came out (a held-out seed's look-alikes: 2 ID switches, IDF1 88.1%; kept:
    0, 95.8%); on 39 tuning scenes a look-alike scene 88.2% / 2 switches -> 89.0% / 0, no
    other scene changed."""
    reliable_quality: float = 0.3
    """A frame is reliable when the segmenter's mask quality exceeds this (SAM2's IoU)."""
    min_match_score: float = 0.3
    """A track and a candidate below this fused score are not the same person."""
    kalman_min_visible: float = 0.6
    """A view whose box area is below this share of the predicted box does not correct the
    Kalman state (the person is partly hidden), unless the person was hidden the frame
    before and the view is not counted as occluded (``occluded_below_visible``): a coasted
    box drifts and widens, and a whole view can look small beside it. Re-anchoring there
    took the seed-23 and seed-31 pillar scenes from 86.4% to 90.3% and 90.2% to 92.2% MOTA;
    the eleven first scenes are unchanged."""
    occluded_below_visible: float = 0.4
    """Below this share of the predicted box area a matched person counts as occluded."""
    search_max_speed: float = 1.0
    """How fast, in body heights per second, a hidden person may have gone from where the
    motion model puts them: ``search_regions`` reach no farther, where the centre gate,
    which widens with every frame hidden, would soon take in the whole frame. A walker is
    about 0.8 body heights a second; 0.6 missed a walker who came out of a pillar scene's
    pillar 0.85 body heights from their coasted box after 1.7 s."""
    gate_chi2: float = 9.2103
    """Squared Mahalanobis gate on the box centre (chi2 0.99, 2 dof)."""
    duplicate_overlap: float = 0.7
    """Candidates whose masks share this much of the smaller one are one person seen from
    two prompts."""
    memory_admit_mask: float = 0.5
    """Memory admission (SAMURAI): s_mask above this, object score > 0, s_kf > 0."""
    ema_lambda_min: float = 0.5
    """EMA decay when the Kalman consistency is perfect (new observation weighs most)."""
    ema_lambda_max: float = 0.95
    """EMA decay when the Kalman consistency is nil (memory barely moves)."""
    n_init: int = 5
    """Frames a new track must be found in before it is confirmed."""
    tentative_max_misses: int = 2
    """Frames a not-yet-confirmed track may miss before it is dropped (a partly hidden
    newcomer is not always found)."""
    tentative_behind_max_misses: int = 6
    """...and this many while at least half of their predicted box lies in the box of a
    confirmed person seen in the frame: a newcomer behind someone is found only when they
    come out (a far look-alike behind a walker, dropped after three frames, was found again
    ten frames later and born anew at the next detection). Rows are held back for the
    longer of the two (``confirmation_delay``), so a track confirmed late keeps its first
    frames. On the tuning scenes a look-alike scene 86.8% -> 90.4% MOTA, the others as they
    were; any newcomer allowed 4-6 misses lost back_views a person for 5 frames more and
    one ID switch (the track behind took the birth of the person it was)."""
    max_hidden_s: float = 3.0
    """Seconds without the person before a track ends (PHALP's max_age, 50 frames, in
    time: a 2 s occlusion plus going behind and coming out again lasted 65 frames at
    24 fps on long_occlusion, and 50 frames ended the walker's track first)."""
    hidden_velocity_decay: float = 1.0
    """Each frame a person stays hidden, the Kalman velocity is multiplied by this (1: kept).
    On the tuning scenes (camera_pan, crossing, hidden_person) any decay lost: 0.95 turned
    hidden_person's MOTA from 94.5% to 72.4% with 5 ID switches (its hidden walker keeps
    going behind the person in front), 0.99 lost 0.2 points; so the velocity is kept and
    the time hidden widens the gate instead (``hidden_position_std``)."""
    hidden_position_std: float = 0.05
    """Each frame a person stays hidden, the Kalman position spread (std, in box heights)
    grows by this on top of the motion model's own, so the gate that re-finds them widens
    with the time hidden (it is never dropped). Tuning scenes: mean MOTA 94.5% -> 94.8%,
    IDF1 97.2% -> 97.4%; 0.1 with a 0.98 decay gave 94.3% / 97.2%."""
    birth_min_score: float = 0.5
    """Detector score a new person needs where the detection touches a tracked person's
    predicted box (two people crossing come out as one loose box of a middling score)."""
    birth_min_score_untracked: float = 0.3
    """Detector score a new person needs where the detection touches nobody's predicted box
    (a clip's first frame, or a part of the frame nobody is tracked in; the lower of the
    two applies); BlazePose's crop must still find a pose there. Two look-alikes
    overlapping at a clip's start scored 0.48 and 0.37 and were found 5 and 10 frames
    late. On 39 scenes: three look-alike and pillar scenes +1.0 to +3.7 MOTA, one pillar
    scene -1.9 (its walker's track began a frame sooner and then took the pillar for them
    twice), the rest as they were; 0.3 everywhere cost a crossing 11.7 points with 2 ID
    switches."""
    birth_min_size_px: tuple[float, float] = (8.0, 32.0)
    """Smallest box (w, h) a new person may have (the lite detector's own minimum)."""
    birth_max_covered: float = 0.5
    """A detection may start a track only if less than this of its mask lies in others'."""
    birth_partial_height: float = 0.75
    """A newcomer whose mask is shorter than this share of their detection's box is partly
    hidden at birth: the tallest they have been is the detection's height, not the mask's,
    so a whole view of them later passes ``max_height_growth``. A person 90 px tall behind a
    walker, born from the lower 52 px left of them, failed that test for their whole view at
    the next detection (back_views 97.2% -> 98.3% MOTA; no other tuning scene changed)."""
    adopt_detection_iou: float = 0.5
    """A detection whose crop found nobody takes, at this box IoU or more, the mask a track's
    crop found there and the track turned down (see ``SegFollow._adopted``; above 1: never).
    The default scenes' enter_leave (a walker coming in where another goes out) 87.0% ->
    92.2% MOTA, the newcomer's track starting at the first detection of them, not 5 frames
    later; no other of 39 scenes changed."""
    birth_lost_iou: float = 0.3
    """No birth where a hidden track is predicted to be (it is that person coming back)."""
    birth_same_pose: float = 0.2
    """A detection whose pose has its torso centre within this share of a box height of
    another person's found this frame is that person again (a detector box spanning two
    people, whose crop found a piece of one of them): it starts no track, if its feet are
    also there (``birth_same_feet``). Lite only, whose masks never overlap, so the mask test
    cannot see it."""
    birth_same_feet: float = 0.12
    """...and if its pose's ankles are within this share of a box height, in image rows, of
    the other's: the same body stands in one place, while a person standing behind another
    (a look-alike waiting behind a walker, a child at the back) has their feet higher in
    the picture. On the tuning scenes, with either detector, poses of one body differed by
    at most 0.08 and poses of two people by 0.16 or more. With YOLOv4-tiny the torso test
    alone kept the far look-alike of two look-alike scenes from getting a track for a
    second (first scenes' lookalike: 81.6% -> 90.4% MOTA). A pose less than half as tall as
    the other is still judged by its torso alone: on back_views SSDLite boxed two people at
    once, and the crop found a piece of one whose feet the model put anywhere."""
    birth_same_torso: float = 0.2
    """...and only if the two poses' torsos (shoulders' midpoint to hips') differ in length
    by less than this share of the longer: a pose model puts one body's shoulders and hips
    alike from any crop holding it, while a person farther back has a shorter torso. On the
    tuning scenes the torso and feet tests passed for two people twice (torso ratios 0.46
    and 0.72: a far look-alike 0.67 as tall as the walker in front, whose pose put an ankle
    at the knee, went without a track for 20 frames) and never for one body."""
    max_height_growth: float = 1.35
    """A candidate taller than this times the track's height (the larger of its predicted
    box's and the tallest box it has had) is not its person: the crop of someone going
    behind a nearer person shows that person, whose box the gate on the centre lets
    through. Chosen on a look-alike scene of another seed (31), where the far person's track
    took the near one's body (9 ID switches, 2 with the gate); the eleven first scenes are
    unchanged by it."""
    max_feet_drop: float | None = 0.15
    """A candidate whose pose puts the ankles lower in the picture than the track's person
    stood in their last whole view (``FEET_MIN_VISIBILITY``), by more than this share of
    their height plus what they could have walked towards the camera since
    (``search_max_speed`` heights a second), is someone nearer the camera, not them (None:
    off). On a ground plane seen from above, nearer is lower; the pose places the ankles
    even where the crop cuts the legs off. On seed 317's look-alikes (a held-out set, since
    looked at) the far one stood still while the near one walked in front, the far one's
    crop found the near body, whose mask (209 px) passed ``max_height_growth`` (1.35 times
    the far one's 174 px), and the two swapped for good: its ankles were 0.23-0.42 of a
    height below the far one's, while one body's ankles were at most 0.12 below the frame
    before on the look-alike scenes checked. 88.1 / 81.4 / 2 -> 92.6 / 96.2 / 0 (MOTA /
    IDF1 / ID switches); none of the other 68 scenes (39 tuning, 29 held-out) changed, nor
    the later held-out seed 331; 0.3 let the swap through. The mask's bottom in place
    of the ankles (cut at the crop's edge, and moving with every step) cost 22 ID switches
    on the same scenes, and feet taken from views whose ankles the pose guessed (a
    returning person's legs still hidden) turned down their next whole view (a long
    occlusion, 1 switch)."""
    detector_box_weight: float = 0.5
    """A track learns how far the detector's box of its person reaches left and right of
    its mask's box (in mask heights: an EMA with this weight, 0 = off), and its rows report
    the mask's box widened by that. It learns from detection frames where a detection and a
    view not counted as occluded are each other's best match at IoU >= 0.5 and the detection
    covers no one else's box; it only widens. BlazePose's masks of people 40-80 px tall miss
    the thin limbs: they are 60-80% as wide as the person, and as high. On the tuning scenes
    with YOLOv4-tiny, small_people went from 63.3% to 76.8% MOTA, the first scenes' mean from
    89.7% to 91.4%. Learning from any paired detection, and narrowing too, slid a crossing's
    row onto the other walker whenever SSDLite boxed the two as one (seed 73: 97.9% -> 89.4%
    MOTA; 97.9% with these two rules); correcting the top and bottom too was worse."""
    detector_box_max_margin: float = 0.25
    """The largest correction of a side, in mask heights."""
    landmark_box_min_visibility: float | None = 0.5
    """A row's box also reaches left and right to the person's landmarks of at least this
    visibility (the pose model's own, 0.5 being MediaPipe's usual cut; None: off); it only
    widens. A mask misses the arm or leg swung out that its landmarks find: a runner's
    mask box was a wrist short, and look-alikes side by side had masks narrower than
    their bodies. Widths only: the landmarks have no top of the head, and below the knees
    of someone half hidden they are guesses (top and bottom too: small_people -0.5 and
    -1.1). With the pipeline's table judging whole views by the mask's box (a partial view
    widened to its landmarks is still partial), on 39 scenes (the 28 tuning scenes and
    those of seeds 57 and 191): no scene lower; a hidden pillar +2.9 MOTA, look-alikes
    (seed 179) +1.5, small_people +0.6 and +1.2, a long occlusion +0.8; mean 93.4 -> 93.6."""
    detector_whole_iou: float = 0.5
    """A view and a detection that are each other's best match at this IoU or more, and
    whose heights agree (``detector_whole_height``), show the whole person, however small
    the view is beside the predicted box, if it is about as tall as the person has been
    (``max_height_growth``: the detector boxes what it sees, the upper half of someone
    behind a sign): it corrects the Kalman state and is not counted as occluded (above 1:
    off). A walker's mask narrows to a third of the box learnt from a
    wide stride with the legs together; judged by area alone such views were partly hidden,
    so the Kalman state went uncorrected for many frames and drifted off the person. On the
    eleven tuning scenes: small_people 76.6% -> 87.0% MOTA, the mean 91.0% / 94.9% / 4 ID
    switches -> 92.9% / 96.2% / 1, recall of people 40-80 px tall 82.9% -> 89.2%."""
    detector_whole_height: float = 0.15
    """...within this share of the taller of the two."""
    narrow_view_max_offset: float | None = 0.15
    """A view of a person under ``partial_keeps_height_px`` that is as tall as they have been
    and whose centre is within this share of the predicted box's width of its centre is
    not counted as occluded, however narrow (None: off). BlazePose's masks of small walkers
    narrow to their torso while the legs pass each other, and the predicted box, kept wide
    by the wider views before, then read them as partly hidden for frames on end, in plain
    view; a person partly behind something shows an off-centre part. It does not correct
    the Kalman state: the narrow box would make the next wide view look too big. On 39
    scenes: small_people +1.4, +1.1 and +0.3 MOTA on three seeds, people 40-80 px tall
    89.9% -> 90.8% found, no other scene changed; for people of any size it cost the
    look-alikes 0.8-4.4 and fast_motion 2.6.
    Taller people's views qualify too where no confirmed person nearer the camera (a lower
    predicted box bottom) has a predicted box reaching into theirs (``_someone_in_front``):
    a walker bringing the legs together narrowed from 165 to 74 px in eight frames, alone
    in front of the camera, and read as hidden. On 39 scenes: a pillar scene +3.0 MOTA,
    fast_motion +1.3, a crossing +1.1, look-alikes +0.7 and +0.8, small_people +0.3, no
    scene lower, no more ID switches; letting such views also correct the Kalman state took
    a look-alike scene from 0 to 2 switches and one from 2 to 4."""
    partial_keeps_height_px: float | None = 80.0
    """A view shorter than the person has been (``max_height_growth``) that still corrects
    the Kalman state (``kalman_min_visible``) corrects its left and right only, the top and
    bottom staying the predicted ones, for people who have been at least this tall (None:
    never). A look-alike's box shrank by a third with one view of their upper half behind
    a nearer walker, and their crops then missed them; a runner's with the legs tucked in.
    BlazePose's masks of people under 80 px lose their legs in plain view, and the box must
    follow the mask there, or every later view of them looks partly hidden beside it:
    without the bound, small_people lost 0.6, 3.4 and 4.2 MOTA on three seeds. On 39 scenes
    (the 28 tuning scenes, seeds 57 and 191): fast_motion 82.9% -> 85.5% MOTA, back_views
    98.3% -> 99.4%, hidden_person +0.4 / +0.9 / +1.4 on three seeds, look-alikes +2.2 and
    +0.8; one look-alike scene (tuning seed) 89.0% -> 88.2% with 2 ID switches (the crop of
    the far one, as tall as they are, found the near one for three frames where they
    crossed); mean 93.6% / 96.3% -> 93.8% / 96.4%. Measuring such views by a detection of
    the whole person instead, where one paired with them, changed no scene on top of it."""
    prompt_detection_iou: float = 0.5
    """A detection this close to the predicted box of a track seen in the frame before adds
    no prompt of its own."""
    prompt_keypoint_min_score: float = 0.88
    """A detector keypoint becomes a point prompt above this score: the sigmoid of Keypoint
    R-CNN's heatmap logit, so 0.88 is logit 2, below which Detectron hides keypoints."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if not 0.0 <= self.ema_lambda_min <= self.ema_lambda_max <= 1.0:
            raise ValueError("need 0 <= ema_lambda_min <= ema_lambda_max <= 1")
        if self.tau_kf < 0 or self.n_init < 1 or not self.max_hidden_s > 0:
            raise ValueError("tau_kf >= 0, n_init >= 1 and max_hidden_s > 0 are required")
        if self.tentative_max_misses < 0 or self.tentative_behind_max_misses < 0:
            raise ValueError("tentative_max_misses and tentative_behind_max_misses must be >= 0")
        offset = self.narrow_view_max_offset
        if offset is not None and not 0.0 <= offset <= 0.5:
            raise ValueError("narrow_view_max_offset must be in [0, 0.5] or None")
        if not 0.0 <= self.birth_min_score_untracked <= 1.0:
            raise ValueError("birth_min_score_untracked must be in [0, 1]")
        if not 0.0 <= self.birth_partial_height <= 1.0:
            raise ValueError("birth_partial_height must be in [0, 1]")
        if not 0.0 <= self.detector_box_weight <= 1.0 or self.detector_box_max_margin < 0:
            raise ValueError("need 0 <= detector_box_weight <= 1 and detector_box_max_margin >= 0")
        if self.landmark_box_min_visibility is not None and not (
            0.0 <= self.landmark_box_min_visibility <= 1.0
        ):
            raise ValueError("landmark_box_min_visibility must be in [0, 1] or None")
        if self.partial_keeps_height_px is not None and self.partial_keeps_height_px < 0:
            raise ValueError("partial_keeps_height_px must be >= 0 or None")
        if min(self.birth_same_pose, self.birth_same_feet, self.birth_same_torso) < 0:
            raise ValueError("birth_same_pose, birth_same_feet and birth_same_torso must be >= 0")
        if self.adopt_detection_iou <= 0:
            raise ValueError(
                f"adopt_detection_iou must be > 0 (above 1: off), got {self.adopt_detection_iou}"
            )
        if self.max_feet_drop is not None and self.max_feet_drop < 0:
            raise ValueError("max_feet_drop must be >= 0 or None")
        if self.search_max_speed < 0:
            raise ValueError(f"search_max_speed must be >= 0, got {self.search_max_speed}")
        if self.max_height_growth < 1.0:
            raise ValueError(f"max_height_growth must be >= 1, got {self.max_height_growth}")
        if not 0.0 <= self.hidden_velocity_decay <= 1.0 or self.hidden_position_std < 0:
            raise ValueError("need 0 <= hidden_velocity_decay <= 1 and hidden_position_std >= 0")

    def max_age(self, fps: float) -> int:
        """Frames without the person before a track ends, at ``fps``."""
        return max(1, round(self.max_hidden_s * fps))

    @property
    def confirmation_delay(self) -> int:
        """Most frames after its birth before a track is known to be confirmed or dropped."""
        misses = max(self.tentative_max_misses, self.tentative_behind_max_misses)
        return self.n_init - 1 + misses


@dataclass
class Track:
    """One person's state inside SegFollow."""

    track_id: int
    mean: np.ndarray
    cov: np.ndarray
    memory: np.ndarray
    hits: int = 1
    confirmed: bool = False
    reliable_streak: int = 0
    frames_since_seen: int = 0
    tentative_misses: int = 0
    tallest_px: float = 0.0
    """The tallest box the person has had: a re-emerging person grows back to it."""
    feet_row: float | None = None
    """The image row of the ankles in the person's last whole view that showed them."""
    frames_since_feet: int = 0
    side_margins: np.ndarray | None = None
    """(2,) how far the detector's box reaches left of and right of the mask's box (x0 and
    x1 offsets), in mask heights."""

    @property
    def predicted_box(self) -> np.ndarray:
        return xyah_to_xyxy(self.mean[:4])


@dataclass(frozen=True)
class _Candidate:
    observation: Observation
    prompt: Prompt
    turned_down_by: int | None = None
    """The track whose own crop found this mask and did not take it (adopted ones)."""

    @property
    def prompt_track_id(self) -> int | None:
        return self.prompt.track_id


class SegFollow:
    """Tracks people frame by frame. ``step`` returns a TrackFrame per live track.

    Tentative tracks are reported too (``is_confirmed`` tells them apart) so a caller can
    keep their first frames once they are confirmed; a tentative track that misses more
    than ``tentative_max_misses`` frames is dropped (``dropped_tentative`` lists those ids).
    """

    def __init__(
        self,
        segmenter: Segmenter,
        config: SegFollowConfig | None = None,
        fps: float = DEFAULT_FPS,
    ) -> None:
        self.segmenter = segmenter
        self.config = config or SegFollowConfig()
        self.max_age = self.config.max_age(fps)
        self.fps = fps
        self.tracks: dict[int, Track] = {}
        self.dropped_tentative: set[int] = set()
        self._next_id = 1
        self._memory = segmenter if isinstance(segmenter, MemorySegmenter) else None
        self._forget = getattr(segmenter, "forget", None)

    def is_confirmed(self, track_id: int) -> bool:
        track = self.tracks.get(track_id)
        return track is not None and track.confirmed

    def search_regions(self) -> list[np.ndarray]:
        """Boxes (4,) where the next frame may show a confirmed person who is hidden now:
        the box the motion model predicts for them grown by the centre gate's extent, so
        that whoever the gate would let them match is inside, but by no more than they
        could have walked since they were last seen (``search_max_speed``). Empty when
        nobody is hidden. A detection there finds someone who came back out where the
        motion model does not look (they stopped or turned while hidden) before the next
        regular detection, and the crop of their own prompt would miss them until then."""
        cfg = self.config
        regions = []
        for track in self.tracks.values():
            if not track.confirmed or track.frames_since_seen == 0:
                continue
            mean, cov = kalman.predict(track.mean, track.cov)
            gate_w, gate_h = kalman.gate_half_extent(mean, cov, cfg.gate_chi2)
            seconds = (track.frames_since_seen + 1) / self.fps
            walked = cfg.search_max_speed * float(mean[3]) * seconds
            grow = np.array([min(gate_w, walked), min(gate_h, walked)])
            regions.append(xyah_to_xyxy(mean[:4]) + np.concatenate([-grow, grow]))
        return regions

    # -- one frame ---------------------------------------------------------------------
    def step(self, frame: Frame, detections: Sequence[Detection] | None = None) -> list[TrackFrame]:
        cfg = self.config
        height, width = frame.rgb.shape[:2]
        for track in self.tracks.values():
            track.mean, track.cov = kalman.predict(track.mean, track.cov)

        track_list = list(self.tracks.values())
        prompts = [Prompt(box_xyxy=t.predicted_box, track_id=t.track_id) for t in track_list]
        detections = self._birth_worthy(detections or [], track_list)
        if detections:
            # A hidden track's prompt is where its motion model guesses, so a detection
            # there may be the person come back somewhere else in the box: it is prompted.
            predicted = np.array(
                [t.predicted_box for t in track_list if t.frames_since_seen == 0]
            ).reshape(-1, 4)
            det_boxes = np.array([d.box_xyxy for d in detections])
            overlap = iou_matrix(det_boxes, predicted).max(axis=1, initial=0.0)
            prompts += [
                self._detection_prompt(d, width, height)
                for d, o in zip(detections, overlap, strict=True)
                if o < cfg.prompt_detection_iou
            ]

        proposals = self.segmenter.segment(frame, prompts) if prompts else []
        candidates = self._deduplicate(
            [
                _Candidate(obs, p)
                for p, obs_list in zip(prompts, proposals, strict=True)
                for obs in obs_list
            ]
        )

        s_mask, s_kf, s_fused, feasible = self._scores(track_list, candidates, width)
        behind = [self._behind_someone(t, settled_nearer=True) for t in track_list]
        behind_ids = {t.track_id for t, b in zip(track_list, behind, strict=True) if b}
        matches = self._assign(
            s_fused,
            feasible,
            [t.frames_since_seen for t in track_list],
            behind,
            [c.prompt_track_id in behind_ids for c in candidates],
        )

        results: list[TrackFrame] = []
        matched_candidates: set[int] = set()
        whole = self._detector_whole(
            {row: candidates[col].observation for row, col in matches.items()}, detections
        )
        for row, track in enumerate(track_list):
            col = matches.get(row)
            if col is None:
                results.append(self._miss(track, frame.index))
                continue
            matched_candidates.add(col)
            results.append(
                self._hit(
                    track,
                    candidates[col].observation,
                    frame.index,
                    float(s_mask[row, col]),
                    float(s_kf[row, col]),
                    float(s_fused[row, col]),
                    width,
                    row in whole,
                )
            )

        self._remove_ended(width)
        results = [r for r in results if r.track_id in self.tracks]
        candidates += self._adopted(prompts, proposals, candidates, matched_candidates)
        results += self._births(candidates, matched_candidates, detections, frame.index)
        self._learn_side_margins(results, detections)
        return [self._reported(row, width, height) for row in results]

    # -- scoring and assignment ---------------------------------------------------------
    def _birth_worthy(
        self, detections: Sequence[Detection], tracks: list[Track]
    ) -> list[Detection]:
        """The detections big enough, and sure enough, to start a track: ``birth_min_score``
        where they touch someone's predicted box, ``birth_min_score_untracked`` elsewhere."""
        cfg = self.config
        min_w, min_h = cfg.birth_min_size_px
        predicted = np.array([t.predicted_box for t in tracks]).reshape(-1, 4)
        untracked = min(cfg.birth_min_score_untracked, cfg.birth_min_score)
        worthy = []
        for detection in detections:
            box = np.asarray(detection.box_xyxy, dtype=np.float64)
            if box[2] - box[0] < min_w or box[3] - box[1] < min_h:
                continue
            if detection.score < cfg.birth_min_score and (
                detection.score < untracked
                or iou_matrix(box, predicted).max(initial=0.0) > 0.0
            ):
                continue
            worthy.append(detection)
        return worthy

    def _detection_prompt(self, detection: Detection, width: int, height: int) -> Prompt:
        """The detection's box, with its confident in-frame keypoints as positive clicks.

        COCO keypoints (17) are narrowed to shoulders, hips and knees (see
        ``detect_full.keypoint_prompts`` for why); other keypoint sets are used whole.
        """
        box = np.asarray(detection.box_xyxy, dtype=np.float64)
        if detection.keypoints is None:
            return Prompt(box_xyxy=box)
        keypoints = np.asarray(detection.keypoints, dtype=np.float64).reshape(-1, 3)
        if len(keypoints) == len(COCO_KEYPOINTS):
            keypoints = keypoints[list(PROMPT_KEYPOINTS)]
        x, y, score = keypoints.T
        keep = (
            (score > self.config.prompt_keypoint_min_score)
            & (x >= 0)
            & (x < width)
            & (y >= 0)
            & (y < height)
        )
        if not keep.any():
            return Prompt(box_xyxy=box)
        return Prompt(
            box_xyxy=box,
            points_xy=keypoints[keep, :2].copy(),
            point_labels=np.ones(int(keep.sum()), dtype=np.int32),
        )

    def _adopted(
        self,
        prompts: list[Prompt],
        proposals: list[list[Observation]],
        candidates: list[_Candidate],
        matched: set[int],
    ) -> list[_Candidate]:
        """Detections that found nobody, each paired with the person a track's crop found
        there and the track turned down.

        A crop paints out whom it finds before the people behind are looked for, so when a
        track's crop finds someone else (a newcomer walking into where a leaving or hidden
        person is predicted) the newcomer's own detection comes back empty; the track then
        rejects the mask as not theirs, and nobody could start a track on it."""
        unanswered = [
            p for p, found in zip(prompts, proposals, strict=True)
            if p.track_id is None and not found
        ]  # fmt: skip
        rejected = [
            i for i, c in enumerate(candidates)
            if i not in matched and c.prompt_track_id is not None
        ]  # fmt: skip
        if not unanswered or not rejected:
            return []
        overlap = iou_matrix(
            np.array([p.box_xyxy for p in unanswered]),
            np.array([candidates[i].observation.box_xyxy for i in rejected]),
        )
        adopted = []
        for row, prompt in enumerate(unanswered):
            col = int(np.argmax(overlap[row]))
            if overlap[row, col] >= self.config.adopt_detection_iou:
                source = candidates[rejected[col]]
                adopted.append(_Candidate(source.observation, prompt, source.prompt_track_id))
        return adopted

    def _deduplicate(self, candidates: list[_Candidate]) -> list[_Candidate]:
        """One person per mask: of masks from different prompts that cover the same pixels
        keep the best. A prompt's own alternatives (SAM2's candidates) all stay: they
        overlap by design, and choosing among them is the assignment's job."""
        order = sorted(range(len(candidates)), key=lambda i: -candidates[i].observation.quality)
        kept: list[_Candidate] = []
        for i in order:
            cand = candidates[i]
            if not any(
                k.prompt is not cand.prompt and self._same_person(cand.observation, k.observation)
                for k in kept
            ):
                kept.append(cand)
        return kept

    def _same_person(self, a: Observation, b: Observation) -> bool:
        """Two masks are one person when most of the smaller lies inside the larger.

        Overlap over the smaller mask, not IoU: a crop around a hidden person returns the
        part of the person in front that the crop shows, a piece of the same body.
        """
        if iou_matrix(a.box_xyxy, b.box_xyxy)[0, 0] <= 0.0:
            return False  # cheap box test first
        inter = np.count_nonzero(a.mask & b.mask)
        smaller = min(np.count_nonzero(a.mask), np.count_nonzero(b.mask))
        return smaller > 0 and inter / smaller >= self.config.duplicate_overlap

    def _scores(
        self, tracks: list[Track], candidates: list[_Candidate], frame_width: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """s_mask, s_kf, s_fused and feasibility, each (tracks, candidates)."""
        cfg = self.config
        shape = (len(tracks), len(candidates))
        s_mask = np.zeros(shape)
        s_kf = np.zeros(shape)
        s_fused = np.zeros(shape)
        feasible = np.zeros(shape, dtype=bool)
        if not tracks or not candidates:
            return s_mask, s_kf, s_fused, feasible
        cand_boxes = np.array([c.observation.box_xyxy for c in candidates])
        cand_centres = xyxy_to_xyah(cand_boxes)[:, :2]
        cand_heights = cand_boxes[:, 3] - cand_boxes[:, 1]
        cand_feet = np.array([_feet_row(c.observation) for c in candidates])
        for r, track in enumerate(tracks):
            s_kf[r] = iou_matrix(track.predicted_box, cand_boxes)[0]
            own = np.array([cand.prompt_track_id == track.track_id for cand in candidates])
            for c, cand in enumerate(candidates):
                if own[c] and self._memory is not None:
                    # Already conditioned on this person's memory: its confidence says it all.
                    s_mask[r, c] = cand.observation.quality
                    continue
                similarity = self.segmenter.appearance_similarity(
                    track.memory, cand.observation.appearance
                )
                s_mask[r, c] = similarity * cand.observation.quality
            gated = kalman.position_distance(track.mean, track.cov, cand_centres) <= cfg.gate_chi2
            # A candidate the track's own prompt produced is near it by construction.
            feasible[r] = gated | (own & (s_kf[r] > 0))
            # Nobody grows by a third from one frame to the next: a much taller mask is the
            # person in front, whom the crop of someone going behind them shows.
            tallest = max(float(track.mean[3]), track.tallest_px)
            feasible[r] &= cand_heights <= cfg.max_height_growth * tallest
            # Nor does anyone shrink by as much while crossing the frame's side: the edge
            # cuts a leaving person's width, not their height, so a much shorter mask is
            # someone farther away whom their crop now shows.
            x0, _, x1, _ = track.predicted_box
            if x0 < 0 or x1 > frame_width:
                feasible[r] &= cand_heights * cfg.max_height_growth >= float(track.mean[3])
            if cfg.max_feet_drop is not None and track.feet_row is not None:
                seconds = (track.frames_since_feet + 1) / self.fps
                drop = cfg.max_feet_drop + cfg.search_max_speed * seconds
                # No ankles (-inf): nothing to judge by.
                feasible[r] &= cand_feet <= track.feet_row + drop * float(track.mean[3])
            if track.reliable_streak >= cfg.tau_kf:
                s_fused[r] = cfg.alpha * s_mask[r] + (1 - cfg.alpha) * s_kf[r]
            else:
                s_fused[r] = s_mask[r]
        feasible &= s_fused >= cfg.min_match_score
        return s_mask, s_kf, s_fused, feasible

    @staticmethod
    def _assign(
        s_fused: np.ndarray,
        feasible: np.ndarray,
        frames_since_seen: Sequence[int],
        behind: Sequence[bool] | None = None,
        found_for_behind: Sequence[bool] | None = None,
    ) -> dict[int, int]:
        """Hungarian assignment on cost 1 - s_fused, in three rounds.

        Tracks seen in the previous frame choose first: a person who just vanished behind
        another must not take the mask of the one in front, whose own track saw it a frame
        ago. Of those, tracks ``behind`` someone (at least half of the predicted box inside
        a nearer settled person's) choose after the others, with whoever the first round
        left unmatched: the person in front is the one in view, so where two look alike
        and their boxes have been pulled together, a mask there is the front one's. The
        masks ``found_for_behind`` (by the crop of a track behind someone) wait for that
        second round: the person in front has a crop of their own. Every hidden track then
        competes in one assignment, whatever the time hidden: ordering them by that time
        too (DeepSORT's full cascade) let a track hidden for 2 s take a returning person
        whose own track, hidden for 3 s, matched them far better.
        """
        matches: dict[int, int] = {}
        if s_fused.size == 0 or not feasible.any():
            return matches
        rows_count, cols_count = s_fused.shape
        hidden = np.asarray(frames_since_seen) > 0
        back = np.zeros(rows_count, dtype=bool) if behind is None else np.asarray(behind)
        reserved = (
            np.zeros(cols_count, dtype=bool)
            if found_for_behind is None
            else np.asarray(found_for_behind, dtype=bool)
        )
        free_cols = np.ones(cols_count, dtype=bool)

        def solve(rows: np.ndarray, cols: np.ndarray) -> None:
            sub = feasible[np.ix_(rows, cols)]
            if not sub.any():
                return
            cost = np.where(sub, 1.0 - s_fused[np.ix_(rows, cols)], _INFEASIBLE)
            for r, c in zip(*linear_sum_assignment(cost), strict=True):
                if sub[r, c]:
                    matches[int(rows[r])] = int(cols[c])
                    free_cols[cols[c]] = False

        solve(np.flatnonzero(~hidden & ~back), np.flatnonzero(free_cols & ~reserved))
        unmatched = np.array([r not in matches for r in range(rows_count)])
        solve(np.flatnonzero(~hidden & unmatched), np.flatnonzero(free_cols))
        solve(np.flatnonzero(hidden), np.flatnonzero(free_cols))
        return matches

    def _detector_whole(
        self, views: dict[int, Observation], detections: Sequence[Detection]
    ) -> set[int]:
        """The keys of ``views`` whose view a detection confirms as the whole person: the
        two are each other's best match at IoU >= ``detector_whole_iou``, and their heights
        agree within ``detector_whole_height``."""
        cfg = self.config
        if not views or not detections or cfg.detector_whole_iou > 1.0:
            return set()
        keys = list(views)
        view_boxes = np.array([views[k].box_xyxy for k in keys], dtype=np.float64)
        det_boxes = np.array([d.box_xyxy for d in detections], dtype=np.float64)
        whole = set()
        pairs = mutual_best_matches(iou_matrix(view_boxes, det_boxes), cfg.detector_whole_iou)
        for i, best in pairs.items():
            view_h = view_boxes[i, 3] - view_boxes[i, 1]
            det_h = det_boxes[best, 3] - det_boxes[best, 1]
            if abs(view_h - det_h) <= cfg.detector_whole_height * max(view_h, det_h):
                whole.add(keys[i])
        return whole

    def _learn_side_margins(self, rows: list[TrackFrame], detections: Sequence[Detection]) -> None:
        """Updates each track's detector margins from this frame's detections (an EMA,
        ``detector_box_weight``). A detection teaches a track only when the two are each
        other's best match at IoU >= 0.5, the view is not counted as occluded, and the
        detection's box covers no part of anyone else's box: a detector's box around two
        overlapping people would otherwise slide the row onto the other person."""
        cfg = self.config
        seen = [r for r in rows if r.observation is not None and r.track_id in self.tracks]
        if cfg.detector_box_weight == 0 or not detections or not seen:
            return
        det_boxes = np.array([d.box_xyxy for d in detections], dtype=np.float64)
        mask_boxes = np.array([r.observation.box_xyxy for r in seen], dtype=np.float64)
        overlaps = iou_matrix(mask_boxes, det_boxes)
        box_of = {t.track_id: t.predicted_box for t in self.tracks.values()}
        box_of.update({r.track_id: b for r, b in zip(seen, mask_boxes, strict=True)})
        # Which track boxes each detection reaches into (IoU > 0: any overlap at all).
        reaches = iou_matrix(det_boxes, np.array(list(box_of.values()))) > 0
        column_of = {track_id: c for c, track_id in enumerate(box_of)}
        for i, best in mutual_best_matches(overlaps, 0.5).items():
            row = seen[i]
            if row.occluded:
                continue
            if np.delete(reaches[best], column_of[row.track_id]).any():
                continue
            box = mask_boxes[i]
            box_height = max(float(box[3] - box[1]), 1.0)
            offsets = (det_boxes[best][[0, 2]] - box[[0, 2]]) / box_height
            limit = cfg.detector_box_max_margin
            # Widen only: a mask wider than the detector's box is body the mask has seen.
            margins = np.array([np.clip(offsets[0], -limit, 0.0), np.clip(offsets[1], 0.0, limit)])
            track = self.tracks[row.track_id]
            if track.side_margins is not None:
                weight = cfg.detector_box_weight
                margins = weight * margins + (1 - weight) * track.side_margins
            track.side_margins = margins

    def _reported(self, row: TrackFrame, width: int, height: int) -> TrackFrame:
        """The row with its mask's box widened by the track's detector margins and to its
        visible landmarks (``landmark_box_min_visibility``). Only the reported box changes:
        the motion model and the gates keep the mask's."""
        track = self.tracks.get(row.track_id)
        if track is None or row.observation is None:
            return row
        box = np.asarray(row.observation.box_xyxy, dtype=np.float64)
        widened = box.copy()
        if track.side_margins is not None:
            widened[[0, 2]] += track.side_margins * max(float(box[3] - box[1]), 1.0)
        landmarks = row.observation.landmarks
        min_visibility = self.config.landmark_box_min_visibility
        if landmarks is not None and min_visibility is not None:
            xs = np.asarray(landmarks.image_px, dtype=np.float64)[
                np.asarray(landmarks.visibility) >= min_visibility, 0
            ]
            if xs.size:
                widened[0] = min(widened[0], float(xs.min()))
                widened[2] = max(widened[2], float(xs.max()))
        if np.array_equal(widened, box):
            return row
        return replace(row, box_xyxy=clip_box(widened, width, height))

    # -- track updates ------------------------------------------------------------------
    def _hit(
        self,
        track: Track,
        obs: Observation,
        frame_index: int,
        s_mask: float,
        s_kf: float,
        s_fused: float,
        frame_width: int,
        detector_whole: bool = False,
    ) -> TrackFrame:
        cfg = self.config
        reliable = obs.quality > cfg.reliable_quality and obs.object_score > 0
        # A mask much smaller than the motion model expects is a partly hidden person.
        predicted_area = max(float(box_area(track.predicted_box)), 1.0)
        visible_ratio = min(1.0, float(box_area(obs.box_xyxy)) / predicted_area)
        # The frame's side cuts a person's width, not their place: the motion model sees
        # the box completed past the side, so a person leaving keeps their velocity and
        # their track coasts out of the frame instead of back into it.
        measured = edge_completed_box(obs.box_xyxy, float(track.mean[2]), frame_width)
        kalman_ratio = min(1.0, float(box_area(measured)) / predicted_area)
        # About as tall as the person has been: a view much shorter is a part of them.
        as_tall = (
            float(obs.box_xyxy[3] - obs.box_xyxy[1]) >= track.tallest_px / cfg.max_height_growth
        )
        # The detector boxes what it sees: behind a sign, a person's upper half, which
        # their mask shows too. Only a view as tall as the person is whole by a detection.
        detector_whole = detector_whole and as_tall
        narrow_whole = self._narrow_whole(track, obs.box_xyxy, as_tall)
        if reliable:
            track.reliable_streak += 1
            # Only reliable associations correct the motion model (confidence gate), and
            # only whole views: the box of a half-hidden person moves with the occluder's
            # edge, not with the person, and would teach the filter a false velocity. A
            # person found again after hiding corrects it from any view not counted as
            # occluded: the coasted box has drifted and widened, so a whole view can look
            # small beside it, and without the correction the track's own prompts keep
            # looking where the person is not.
            # A returning view must also be about as tall as the person has been: the
            # coasted box may have shrunk with the partial views before they vanished, and
            # a sliver beside the occluder would then pass the area test.
            found_again_whole = track.frames_since_seen > 0 and as_tall
            if (
                detector_whole
                or kalman_ratio >= cfg.kalman_min_visible
                or (found_again_whole and kalman_ratio >= cfg.occluded_below_visible)
            ):
                keep_height = cfg.partial_keeps_height_px
                # (detector_whole implies as_tall, see above.)
                if not as_tall and keep_height is not None and track.tallest_px >= keep_height:
                    # A view too short to be the whole person moves the box sideways only:
                    # its top or bottom is an occluder's edge or a lost limb, and would
                    # shrink the box that the next crops look in.
                    predicted = track.predicted_box
                    measured = np.array([measured[0], predicted[1], measured[2], predicted[3]])
                track.mean, track.cov = kalman.update(track.mean, track.cov, xyxy_to_xyah(measured))
        else:
            track.reliable_streak = 0
        track.tallest_px = max(track.tallest_px, float(obs.box_xyxy[3] - obs.box_xyxy[1]))
        lam, admitted = self._update_memory(track, obs, s_mask, s_kf)
        if self._memory is not None:
            self._memory.commit(frame_index, track.track_id, obs, lam, admitted)

        track.hits += 1
        track.frames_since_seen = 0
        if not track.confirmed and track.hits >= cfg.n_init:
            track.confirmed = True

        presence = 1.0 / (1.0 + np.exp(-obs.object_score))
        reliability = float(np.clip(s_fused * presence * visible_ratio, 0.0, 1.0))
        occluded = not reliable or (
            visible_ratio < cfg.occluded_below_visible and not (detector_whole or narrow_whole)
        )
        _note_feet(track, obs, whole=as_tall and not occluded)
        return TrackFrame(
            track_id=track.track_id,
            frame=frame_index,
            box_xyxy=np.asarray(obs.box_xyxy, dtype=np.float64),
            s_mask=s_mask,
            s_kf=s_kf,
            s_fused=s_fused,
            reliability=reliability,
            occluded=occluded,
            observation=obs,
        )

    def _narrow_whole(self, track: Track, view_xyxy: np.ndarray, as_tall: bool) -> bool:
        """Whether a view is whole however narrow beside the predicted box: as tall as the
        person has been and centred in it (``narrow_view_max_offset``), and either the
        person is small (under ``partial_keeps_height_px``) or nobody is in front of them.
        Only the row's occluded flag goes by it."""
        cfg = self.config
        keep_height = cfg.partial_keeps_height_px
        if cfg.narrow_view_max_offset is None or not as_tall:
            return False
        tall = keep_height is not None and track.tallest_px >= keep_height
        if tall and self._someone_in_front(track):
            return False
        predicted = track.predicted_box
        width = max(float(predicted[2] - predicted[0]), 1.0)
        offset = abs(float(view_xyxy[0] + view_xyxy[2]) - float(predicted[0] + predicted[2])) / 2
        return offset <= cfg.narrow_view_max_offset * width

    def _someone_in_front(self, track: Track) -> bool:
        """Whether a confirmed person nearer the camera (lower predicted box bottom, the
        feet on a ground plane seen from above) has a predicted box reaching into
        ``track``'s."""
        box = track.predicted_box
        nearer = [
            other.predicted_box
            for other in self.tracks.values()
            if other is not track and other.confirmed and other.predicted_box[3] > box[3]
        ]
        return bool((intersection_matrix(box, np.array(nearer).reshape(-1, 4)) > 0).any())

    def _update_memory(
        self, track: Track, obs: Observation, s_mask: float, s_kf: float
    ) -> tuple[float, bool]:
        """EMA memory: M = lam * M + (1 - lam) * m, lam rising as Kalman consistency falls.

        Returns (lam, admitted); a frame not admitted (or with nobody there, object score
        <= 0) leaves the memory as it was (lam = 1 in effect).
        """
        cfg = self.config
        consistency = float(np.clip(s_kf, 0.0, 1.0))
        lam = cfg.ema_lambda_max - (cfg.ema_lambda_max - cfg.ema_lambda_min) * consistency
        admitted = obs.object_score > 0 and s_mask > cfg.memory_admit_mask and s_kf > 0
        if admitted:
            track.memory = lam * track.memory + (1.0 - lam) * np.asarray(
                obs.appearance, dtype=track.memory.dtype
            )
        return lam, admitted

    def _miss(self, track: Track, frame_index: int) -> TrackFrame:
        track.frames_since_seen += 1
        track.frames_since_feet += 1
        if not track.confirmed:
            track.tentative_misses += 1
        # A hidden person keeps moving but does not keep growing or shrinking: the size
        # velocity learnt while they disappeared behind someone would only shrink the box.
        track.mean[6:8] = 0.0
        track.mean, track.cov = kalman.coast(
            track.mean,
            track.cov,
            self.config.hidden_velocity_decay,
            self.config.hidden_position_std,
        )
        return coasting_frame(track.track_id, frame_index, track.predicted_box)

    def _remove_ended(self, frame_width: int) -> None:
        for track_id, track in list(self.tracks.items()):
            if track.frames_since_seen == 0:
                continue
            # Walked out of the frame: nobody is left to find there, and each frame's crop
            # of the empty side would cost a pose-model run.
            x0, _, x1, _ = track.predicted_box
            gone = x1 <= 0 or x0 >= frame_width
            if not track.confirmed:
                limit = self.config.tentative_max_misses
                if self._behind_someone(track):
                    limit = max(limit, self.config.tentative_behind_max_misses)
                if gone or track.tentative_misses > limit:
                    self.dropped_tentative.add(track_id)
                    self._end(track_id)
            elif gone or track.frames_since_seen > self.max_age:
                self._end(track_id)

    def _behind_someone(self, track: Track, settled_nearer: bool = False) -> bool:
        """Whether at least half of ``track``'s predicted box lies in the box of a confirmed
        person seen this frame (or, before this frame's assignment, the previous one).

        ``settled_nearer``: only people nearer the camera (lower box bottom) whose track is
        settled (``tau_kf`` reliable frames in a row) count. A young track scores by
        appearance alone, so its box says too little of where its person is to put anyone
        behind them."""
        box = track.predicted_box
        in_front = [
            other.predicted_box
            for other in self.tracks.values()
            if other is not track
            and other.confirmed
            and other.frames_since_seen == 0
            and (
                not settled_nearer
                or (other.reliable_streak >= self.config.tau_kf and other.predicted_box[3] > box[3])
            )
        ]
        shared = intersection_matrix(box, np.array(in_front).reshape(-1, 4))
        return bool((shared >= 0.5 * max(float(box_area(box)), 1.0)).any())

    def _end(self, track_id: int) -> None:
        del self.tracks[track_id]
        if self._forget is not None:
            self._forget(track_id)

    def _births(
        self,
        candidates: list[_Candidate],
        matched: set[int],
        detections: Sequence[Detection],
        frame_index: int,
    ) -> list[TrackFrame]:
        """New tracks from detection prompts whose masks lie mostly outside everyone's."""
        cfg = self.config
        if not detections:
            return []
        taken = [candidates[i].observation.mask for i in matched]
        occupied = np.logical_or.reduce(taken) if taken else None
        hidden = [t for t in self.tracks.values() if t.frames_since_seen > 0]
        hidden_boxes = np.array([t.predicted_box for t in hidden]).reshape(-1, 4)
        born: list[TrackFrame] = []
        found = [candidates[i].observation for i in matched]
        for i, cand in enumerate(candidates):
            if i in matched or cand.prompt_track_id is not None:
                continue
            obs = cand.observation
            area = max(float(obs.mask.sum()), 1.0)
            covered = 0.0 if occupied is None else float((obs.mask & occupied).sum()) / area
            if covered >= cfg.birth_max_covered:
                continue
            # A hidden person blocks a birth where they may be coming back, unless their own
            # crop found this mask and they turned it down.
            near = iou_matrix(obs.box_xyxy, hidden_boxes)[0] > cfg.birth_lost_iou
            near &= np.array([t.track_id != cand.turned_down_by for t in hidden], dtype=bool)
            if near.any():
                continue
            if box_area(obs.box_xyxy) <= 0 or obs.object_score <= 0:
                continue
            if any(self._same_pose(obs, other) for other in found):
                continue
            # The detector saw the whole person where the mask may show only the visible
            # part: the motion model starts from the union of both boxes.
            track = self._new_track(obs, union_box(obs.box_xyxy, cand.prompt.box_xyxy))
            detected_height = float(cand.prompt.box_xyxy[3] - cand.prompt.box_xyxy[1])
            if track.tallest_px < cfg.birth_partial_height * detected_height:
                track.tallest_px = detected_height
            if self._memory is not None:
                self._memory.commit(frame_index, track.track_id, obs, None, True)
            occupied = obs.mask.copy() if occupied is None else occupied | obs.mask
            found.append(obs)
            born.append(
                TrackFrame(
                    track_id=track.track_id,
                    frame=frame_index,
                    box_xyxy=np.asarray(obs.box_xyxy, dtype=np.float64),
                    s_mask=float(obs.quality),
                    s_kf=1.0,
                    s_fused=float(obs.quality),
                    reliability=float(obs.quality),
                    occluded=False,
                    observation=obs,
                )
            )
        return born

    def _same_pose(self, a: Observation, b: Observation) -> bool:
        """Two observations are one person when their torsos and their feet are in the same
        place (the pose's ankles, which it places even where the crop does not show them)."""
        if a.landmarks is None or b.landmarks is None:
            return False
        centres = [np.mean(o.landmarks.image_px[list(TORSO_LANDMARKS)], axis=0) for o in (a, b)]
        heights = [float(o.box_xyxy[3] - o.box_xyxy[1]) for o in (a, b)]
        height = max(heights)
        if float(np.linalg.norm(centres[0] - centres[1])) >= self.config.birth_same_pose * height:
            return False
        torsos = [_torso_length(o.landmarks.image_px) for o in (a, b)]
        if abs(torsos[0] - torsos[1]) > self.config.birth_same_torso * max(max(torsos), 1.0):
            return False  # one body has one torso length, whatever crop its pose came from
        if min(heights) < 0.5 * height:
            # A pose less than half the other's height may be a piece of that body whose
            # crop placed the feet anywhere (a box spanning two people in back_views).
            return True
        return abs(_feet_row(a) - _feet_row(b)) < self.config.birth_same_feet * height

    def _new_track(self, obs: Observation, box_xyxy: np.ndarray) -> Track:
        mean, cov = kalman.initiate(xyxy_to_xyah(box_xyxy))
        track = Track(
            track_id=self._next_id,
            mean=mean,
            cov=cov,
            memory=np.asarray(obs.appearance, dtype=np.float32).copy(),
            confirmed=self.config.n_init <= 1,
            reliable_streak=1 if obs.quality > self.config.reliable_quality else 0,
            # The mask's box, as every later frame's: the detector's box can be a fifth
            # taller, and would let the person in front pass the height gate.
            tallest_px=float(obs.box_xyxy[3] - obs.box_xyxy[1]),
        )
        self.tracks[track.track_id] = track
        self._next_id += 1
        return track


def _feet_row(obs: Observation) -> float:
    """The image row of the pose's ankles; -inf for an observation without landmarks."""
    if obs.landmarks is None:
        return -np.inf
    return float(np.mean(obs.landmarks.image_px[list(ANKLE_LANDMARKS), 1]))


def _note_feet(track: Track, obs: Observation, whole: bool) -> None:
    """Where the person stands (``Track.feet_row``), from a whole view with both ankles
    visible; any other view leaves the last one, a frame older."""
    landmarks = obs.landmarks
    if (
        whole
        and landmarks is not None
        and float(np.min(landmarks.visibility[list(ANKLE_LANDMARKS)])) >= FEET_MIN_VISIBILITY
    ):
        track.feet_row = _feet_row(obs)
        track.frames_since_feet = 0
    else:
        track.frames_since_feet += 1


def _torso_length(image_px: np.ndarray) -> float:
    """Distance from the shoulders' midpoint to the hips' in BlazePose landmarks (33, 2+)."""
    shoulders = image_px[list(TORSO_LANDMARKS[:2]), :2].mean(axis=0)
    hips = image_px[list(TORSO_LANDMARKS[2:]), :2].mean(axis=0)
    return float(np.linalg.norm(shoulders - hips))


def coasting_frame(track_id: int, frame_index: int, predicted_box: np.ndarray) -> TrackFrame:
    """What a tracker reports for a person it did not find: the motion model's box, no
    scores, occluded (so the Predictor fills the pose)."""
    return TrackFrame(
        track_id=track_id,
        frame=frame_index,
        box_xyxy=predicted_box,
        s_mask=0.0,
        s_kf=0.0,
        s_fused=0.0,
        reliability=0.0,
        occluded=True,
    )


def edge_completed_box(box_xyxy: np.ndarray, aspect: float, frame_width: int) -> np.ndarray:
    """A box cut by the frame's left or right side, completed past it to ``aspect`` (width
    over height) times its height; a box touching neither side, or both, as it is."""
    box = np.asarray(box_xyxy, dtype=np.float64).copy()
    at_left, at_right = box[0] <= 1.0, box[2] >= frame_width - 1.0
    if at_left == at_right:
        return box
    width = max(aspect * float(box[3] - box[1]), float(box[2] - box[0]))
    if at_left:
        box[0] = box[2] - width
    else:
        box[2] = box[0] + width
    return box
