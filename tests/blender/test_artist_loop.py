"""The artist's loop in real bpy: video strip, track list, ID edits, occlusion edits, the
Combiner re-run, undo, save and reload, re-import, and the mask overlays."""

import json
import shutil

import bpy
import numpy as np
import pytest
from conftest import CAMERA, DEMO_VIDEO, mask_box, scene_state, submodule, write_result

from ram_core.body.rotations import axis_angle_to_matrix
from ram_core.body.skeleton import JOINT_NAMES
from ram_core.io.edits import append_edit, read_edits
from ram_core.io.palette import track_color
from ram_core.io.result import load_result, read_mask
from ram_core.motion.recombine import recombine_result

# Scene frame = video frame + 1.
TRACKS = {1: range(30), 2: range(30), 3: range(10, 24)}


@pytest.fixture
def imported(ext, tmp_path):
    path = write_result(tmp_path / "clip.ram", TRACKS, masks=True, fused=True)
    report = submodule("importer").import_result(path)
    return path.resolve(), report.collection


def armature(track_id: int):
    return bpy.data.objects[f"RAM_Person_{track_id:03d}"]


def keys(obj, data_path: str, index: int = 0) -> np.ndarray:
    """(K, 2) frame, value of one F-curve of an armature."""
    curves = submodule("animation").action_fcurves(obj.animation_data.action, obj)
    for curve in curves:
        if curve.data_path == data_path and curve.array_index == index:
            co = np.empty(2 * len(curve.keyframe_points))
            curve.keyframe_points.foreach_get("co", co)
            return co.reshape(-1, 2)
    raise KeyError(data_path)


def root_location(obj) -> np.ndarray:
    return keys(obj, f'pose.bones["{JOINT_NAMES[0]}"].location', 0)


def track_list(collection) -> dict[int, tuple[int, int]]:
    return {item.track_id: (item.frame_first, item.frame_last) for item in collection.ram.tracks}


def file_bytes(path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}


def test_import_adds_the_video_strip_track_list_and_keyed_signals(imported):
    path, collection = imported
    scene = bpy.context.scene
    strips = submodule("sequencer").video_strips(scene, path)
    assert len(strips) == 1
    strip = strips[0]
    assert strip.type == "MOVIE" and bpy.path.abspath(strip.filepath) == str(DEMO_VIDEO)
    # Video frame 0 on scene frame 1, like the clip behind the camera and the keys.
    # 5.2 renames the strip's start (the old name still works, with a warning).
    start = strip.content_start if hasattr(strip, "content_start") else strip.frame_start
    assert start == 1
    assert track_list(collection) == {1: (1, 30), 2: (1, 30), 3: (11, 24)}
    for name in ("ram_reliability", "ram_gate", "ram_occluded"):
        k = keys(armature(3), f'["{name}"]')
        assert k[0, 0] == 11 and len(k) == 14
    # A re-import keeps one strip.
    submodule("importer").import_result(path)
    assert len(submodule("sequencer").video_strips(scene, path)) == 1


def test_swap_moves_keys_masks_and_log_from_the_frame_on(imported):
    path, collection = imported
    before_1, before_2 = root_location(armature(1)), root_location(armature(2))
    bpy.ops.ram.swap_ids(track_a=1, track_b=2, frame=16)
    assert read_edits(path) == [{"op": "swap", "track_a": 1, "track_b": 2, "from_frame": 15}]
    after_1, after_2 = root_location(armature(1)), root_location(armature(2))
    early, late = after_1[:, 0] < 16, after_1[:, 0] >= 16
    np.testing.assert_allclose(after_1[early], before_1[early], atol=1e-6)
    np.testing.assert_allclose(after_1[late], before_2[late], atol=1e-6)
    np.testing.assert_allclose(after_2[late], before_1[late], atol=1e-6)
    # Masks: from video frame 15 track 1 is drawn where track 2 was.
    x0, y0, x1, y1 = mask_box(2)
    assert np.all(read_mask(path, 15)[y0:y1, x0:x1] == 1)
    assert np.all(read_mask(path, 14)[y0:y1, x0:x1] == 2)
    # The overlay follows the scene's log at once.
    overlay = submodule("overlay")
    log = json.loads(collection.ram.edits_json)
    raw = read_mask(path, 15, apply_edits=False)
    rgba = overlay.overlay_rgba(raw, 15, log)
    expected = np.round(np.array(track_color(1)) * 255)
    np.testing.assert_array_equal(
        rgba[y0:y1, x0:x1, :3], np.broadcast_to(expected, (y1 - y0, x1 - x0, 3))
    )


def test_overlay_pixels_have_the_track_colour_where_its_mask_is(imported):
    path, _collection = imported
    overlay = submodule("overlay")
    raw = read_mask(path, 12, apply_edits=False)
    rgba = overlay.overlay_rgba(raw, 12, [], visible={1, 3})
    for track_id in (1, 3):
        x0, y0, x1, y1 = mask_box(track_id)
        colour = np.round(np.array(track_color(track_id)) * 255)
        assert np.all(rgba[y0:y1, x0:x1, :3] == colour)
        assert np.all(rgba[y0:y1, x0:x1, 3] == overlay.DEFAULT_ALPHA)
    x0, y0, x1, y1 = mask_box(2)  # hidden
    assert np.all(rgba[y0:y1, x0:x1, 3] == 0)
    assert np.all(rgba[raw == 0, 3] == 0)
    # Picking: the pixel's track, through the log.
    x0, y0, _, _ = mask_box(3)
    assert overlay.track_at_pixel(raw, 12, [], x0 + 5, y0 + 5) == 3
    merged = [{"op": "merge", "into": 1, "from": 3}]
    assert overlay.track_at_pixel(raw, 12, merged, x0 + 5, y0 + 5) == 1
    assert overlay.track_at_pixel(raw, 12, [], 1, 1) is None
    labels = {label.track_id: label for label in overlay.track_labels(raw, 12, [])}
    assert sorted(labels) == [1, 2, 3]
    assert mask_box(3)[0] <= labels[3].x <= mask_box(3)[2]
    # Preview view coordinates <-> pixels.
    size = (CAMERA["width"], CAMERA["height"])
    view = overlay.pixel_to_view(100.0, 50.0, size, size)
    assert overlay.view_to_pixel(*view, size, size) == pytest.approx((100.0, 50.0))
    assert overlay.view_to_pixel(0.0, 0.0, size, size) == (size[0] / 2, size[1] / 2)


def test_split_makes_a_new_armature_and_reports_its_id(imported):
    path, collection = imported
    body = armature(1).children[0]
    artist_material = bpy.data.materials.new("artist's skin")
    body.material_slots[0].material = artist_material
    before = root_location(armature(1))
    bpy.ops.ram.split_track(track=1, frame=21)
    new_id = collection.ram.tracks[collection.ram.active_track].track_id
    assert new_id == 4
    assert read_edits(path)[-1] == {"op": "split", "track": 1, "from_frame": 20, "new_id": 4}
    assert track_list(collection)[1] == (1, 20) and track_list(collection)[4] == (21, 30)
    np.testing.assert_allclose(root_location(armature(1)), before[:20], atol=1e-6)
    np.testing.assert_allclose(root_location(armature(4)), before[20:], atol=1e-6)
    assert armature(4).children and armature(4).children[0].data == body.data
    assert body.material_slots[0].material == artist_material
    x0, y0, x1, y1 = mask_box(1)
    assert np.all(read_mask(path, 20)[y0:y1, x0:x1] == 4)


def test_merge_and_delete_remove_armatures_and_keep_the_artists_objects(imported):
    path, collection = imported
    prop = bpy.data.objects.new("sword", None)
    collection.objects.link(prop)
    prop.parent = armature(3)
    constraint = armature(2).constraints.new("COPY_LOCATION")
    before_3 = root_location(armature(3))
    bpy.ops.ram.merge_tracks(into=2, source=3)
    assert "RAM_Person_003" not in bpy.data.objects
    assert prop.name in bpy.data.objects and prop.parent == armature(2)
    merged = root_location(armature(2))
    # On frames both had, track 2's row is kept; track 3 had no others.
    assert len(merged) == 30
    assert not np.allclose(merged[10:24], before_3)
    assert armature(2).constraints[0] == constraint
    bpy.ops.ram.delete_track(track=1)
    assert "RAM_Person_001" not in bpy.data.objects
    assert sorted(track_list(collection)) == [2]
    assert [edit["op"] for edit in read_edits(path)] == ["merge", "delete"]
    assert np.all(read_mask(path, 12) != 1)


@pytest.mark.parametrize(
    "call",
    [
        lambda: bpy.ops.ram.swap_ids(track_a=1, track_b=9, frame=5),
        lambda: bpy.ops.ram.swap_ids(track_a=1, track_b=1, frame=5),
        lambda: bpy.ops.ram.swap_ids(track_a=1, track_b=3, frame=40),
        lambda: bpy.ops.ram.merge_tracks(into=7, source=1),
        lambda: bpy.ops.ram.split_track(track=3, frame=5),
        lambda: bpy.ops.ram.split_track(track=3, frame=11),
        lambda: bpy.ops.ram.delete_track(track=8),
        lambda: bpy.ops.ram.mark_occluded(track=3, frame_start=5, frame_end=15),
        lambda: bpy.ops.ram.mark_occluded(track=3, frame_start=15, frame_end=12),
        lambda: bpy.ops.ram.rerun_combiner(track=6),
    ],
)
def test_bad_arguments_are_reported_and_change_nothing(imported, call):
    path, collection = imported
    state, files = scene_state(), file_bytes(path)
    keyed = root_location(armature(3))
    with pytest.raises(RuntimeError):
        call()
    assert scene_state() == state and file_bytes(path) == files
    np.testing.assert_array_equal(root_location(armature(3)), keyed)
    assert json.loads(collection.ram.edits_json) == []


def test_undo_restores_the_scene_and_the_log(imported):
    path, _collection = imported
    before = root_location(armature(1))
    bpy.ops.ed.undo_push(message="before the edit")
    bpy.ops.ram.delete_track(track=1)
    bpy.ops.ed.undo_push(message="delete")
    assert "RAM_Person_001" not in bpy.data.objects and len(read_edits(path)) == 1
    bpy.ops.ed.undo()
    assert "RAM_Person_001" in bpy.data.objects
    np.testing.assert_allclose(root_location(armature(1)), before)
    assert read_edits(path) == []
    bpy.ops.ed.redo()
    assert "RAM_Person_001" not in bpy.data.objects and len(read_edits(path)) == 1


def test_edits_survive_save_reload_and_reimport(imported, tmp_path):
    path, collection = imported
    bpy.ops.ram.swap_ids(track_a=1, track_b=2, frame=16)
    bpy.ops.ram.split_track(track=2, frame=26)
    shown = {t: root_location(armature(t)) for t in (1, 2, 3, 4)}
    blend = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    collection = bpy.data.collections["RAM clip.ram"]
    assert sorted(track_list(collection)) == [1, 2, 3, 4]
    assert len(json.loads(collection.ram.edits_json)) == 2
    for track_id, values in shown.items():
        np.testing.assert_allclose(root_location(armature(track_id)), values)
    submodule("importer").import_result(path)
    for track_id, values in shown.items():
        np.testing.assert_allclose(root_location(armature(track_id)), values, atol=1e-6)


def test_rerun_after_marking_occluded_changes_only_the_range_and_matches_the_cli(
    imported, tmp_path
):
    path, collection = imported
    bpy.ops.ram.rerun_combiner(track=0)  # nothing edited: nothing to re-run
    assert not (path / "combined.npz").exists()
    before = root_location(armature(1))
    before_2 = root_location(armature(2))
    bpy.ops.ram.mark_occluded(track=1, frame_start=12, frame_end=16, occluded=True)
    assert keys(armature(1), '["ram_occluded"]')[11:16, 1].tolist() == [1.0] * 5
    np.testing.assert_array_equal(root_location(armature(1)), before)  # not re-run yet
    assert [item.track_id for item in collection.ram.tracks if item.needs_combine] == [1]
    cli_copy = tmp_path / "copy.ram"
    shutil.copytree(path, cli_copy)
    bpy.ops.ram.rerun_combiner(track=0)
    after = root_location(armature(1))
    changed = np.flatnonzero(np.abs(after[:, 1:] - before[:, 1:]).max(axis=1) > 1e-5)
    frames = after[changed, 0]
    # The range, plus the gate's ramp before and after it (max_gate_step 0.2: 5 frames).
    assert frames.min() >= 12 - 5 and frames.max() <= 16 + 5 and 12 in frames
    np.testing.assert_array_equal(root_location(armature(2)), before_2)
    recombine_result(cli_copy)
    ours, cli = load_result(path), load_result(cli_copy)
    assert ours.layers == cli.layers == ("pipeline", "edits", "combined")
    # Rotations compared as rotations: near a half-turn, axis-angle may flip sign.
    for name in ("global_orient", "body_pose"):
        np.testing.assert_allclose(
            axis_angle_to_matrix(ours.tracks[name].astype(np.float64)),
            axis_angle_to_matrix(cli.tracks[name].astype(np.float64)),
            atol=1e-5,
        )
    for name in ("transl", "gate"):
        np.testing.assert_allclose(ours.tracks[name], cli.tracks[name], atol=1e-5)
    assert keys(armature(1), '["ram_gate"]')[11:16, 1].tolist() == [0.0] * 5
    assert not any(item.needs_combine for item in collection.ram.tracks)


def test_operators_take_their_tracks_from_the_track_list(imported):
    path, collection = imported
    state = collection.ram
    ids = [item.track_id for item in state.tracks]
    state.active_track = ids.index(2)
    assert bpy.context.view_layer.objects.active == armature(2)
    state.tracks[ids.index(3)].selected = True
    bpy.context.scene.frame_set(14)
    bpy.ops.ram.swap_ids()
    assert read_edits(path) == [{"op": "swap", "track_a": 2, "track_b": 3, "from_frame": 13}]
    state.tracks[[item.track_id for item in state.tracks].index(1)].selected = True
    with pytest.raises(RuntimeError, match="exactly one other"):
        bpy.ops.ram.merge_tracks()
    assert len(read_edits(path)) == 1


def test_hidden_tracks_and_the_overlay_switch(imported):
    _path, collection = imported
    draw = submodule("overlay_draw")
    scene = bpy.context.scene
    scene.frame_set(13)
    shown = list(draw.shown_overlays(scene))
    assert len(shown) == 1 and shown[0][2] == 12 and shown[0][4] == {1, 2, 3}
    collection.ram.tracks[0].show_mask = False
    assert next(iter(draw.shown_overlays(scene)))[4] == {2, 3}
    collection.ram.show_masks = False
    assert list(draw.shown_overlays(scene)) == []


def test_a_split_never_reuses_the_id_of_a_track_that_went(imported):
    path, collection = imported
    bpy.ops.ram.delete_track(track=3)
    bpy.ops.ram.split_track(track=1, frame=5)
    assert read_edits(path)[-1]["new_id"] == 4
    assert sorted(track_list(collection)) == [1, 2, 4]
    track_edits = submodule("track_edits")
    spans = track_edits.track_spans(load_result(path).tracks)
    assert spans[4].frame_first == 5 and spans[1].frame_last == 4
    with pytest.raises(track_edits.EditError, match="no track 3"):
        track_edits.delete_edit(spans, 3)


def test_picking_a_track_makes_its_armature_active(imported):
    _path, collection = imported
    draw = submodule("overlay_draw")
    assert draw.select_track(bpy.context, collection, 3)
    assert bpy.context.view_layer.objects.active == armature(3)
    assert armature(3).select_get() and not armature(1).select_get()
    assert not draw.select_track(bpy.context, collection, 42)


def test_rerunning_one_track_rekeys_only_it_and_reimport_shows_the_same(imported):
    path, _collection = imported
    bpy.ops.ram.mark_occluded(track=1, frame_start=5, frame_end=9, occluded=True)
    bpy.ops.ram.mark_occluded(track=2, frame_start=5, frame_end=9, occluded=True)
    before_2 = root_location(armature(2))
    bpy.ops.ram.rerun_combiner(track=1)
    np.testing.assert_array_equal(root_location(armature(2)), before_2)
    shown = {t: root_location(armature(t)) for t in (1, 2, 3)}
    assert load_result(path).layers[-1] == "combined"
    submodule("importer").import_result(path)
    for track_id, values in shown.items():
        np.testing.assert_allclose(root_location(armature(track_id)), values, atol=1e-6)
    gate = keys(armature(1), '["ram_gate"]')
    assert gate[4:9, 1].tolist() == [0.0] * 5


def test_clicking_a_mask_in_the_preview_picks_its_track(imported):
    from types import SimpleNamespace

    _path, collection = imported
    draw = submodule("overlay_draw")
    scene = bpy.context.scene
    scene.frame_set(13)
    width, height = scene.render.resolution_x, scene.render.resolution_y

    class View2D:  # the preview region shows the frame 1:1, its corner at the region's
        def region_to_view(self, x, y):
            return x - width / 2, y - height / 2

    context = SimpleNamespace(scene=scene, region=SimpleNamespace(view2d=View2D()))
    x0, y0, x1, y1 = mask_box(3)
    # Region y runs up from the bottom, image rows down from the top.
    picked = draw.pick_track(context, (x0 + x1) / 2, height - (y0 + y1) / 2)
    assert picked == (collection, 3)
    assert draw.pick_track(context, 2, 2) is None
    collection.ram.tracks[2].show_mask = False  # a hidden mask cannot be picked
    assert draw.pick_track(context, (x0 + x1) / 2, height - (y0 + y1) / 2) is None


def test_edits_wait_for_a_reimport_when_the_log_changed_outside(imported):
    path, collection = imported
    append_edit(path, {"op": "delete", "track": 3})
    assert "re-import" in submodule("editing").log_out_of_sync(collection)
    with pytest.raises(RuntimeError, match="changed outside this scene"):
        bpy.ops.ram.delete_track(track=2)
    assert len(read_edits(path)) == 1 and "RAM_Person_003" in bpy.data.objects
    submodule("importer").import_result(path)
    bpy.ops.ram.delete_track(track=2)
    assert [edit["track"] for edit in read_edits(path)] == [3, 2]


class RecordingLayout:
    """Stands in for a UILayout (none exists headless): checks each drawn property and
    operator exists, and records what was drawn."""

    def __init__(self, drawn: list):
        self.drawn = drawn

    def _nested(self, *args, **kwargs):
        return RecordingLayout(self.drawn)

    row = column = box = grid_flow = _nested

    def label(self, text="", icon="NONE"):
        self.drawn.append(("label", text))

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, name
        self.drawn.append(("prop", name))

    def operator(self, idname, **kwargs):
        module, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, module), name), idname
        self.drawn.append(("operator", idname))
        return OperatorProperties(getattr(getattr(bpy.ops, module), name))

    def template_list(self, listtype, list_id, data, name, active_data, active_name, **kw):
        assert hasattr(bpy.types, listtype)
        assert name in data.bl_rna.properties and active_name in active_data.bl_rna.properties
        self.drawn.append(("list", name))

    def progress(self, **kwargs):
        self.drawn.append(("progress", kwargs.get("text")))


class OperatorProperties:
    """What ``layout.operator`` returns: setting a property it lacks fails."""

    def __init__(self, operator):
        object.__setattr__(self, "names", operator.get_rna_type().properties.keys())

    def __setattr__(self, name, value):
        assert name in self.names, name


def test_the_panel_draws_the_track_list_and_the_edit_buttons(imported):
    _path, collection = imported
    panels = submodule("panels")
    drawn = []
    panels.draw_track_list(RecordingLayout(drawn), collection)
    operators = [name for kind, name in drawn if kind == "operator"]
    for idname in ("ram.swap_ids", "ram.merge_tracks", "ram.split_track", "ram.delete_track"):
        assert idname in operators
    assert ("list", "tracks") in drawn and ("prop", "show_masks") in drawn
    rows = []
    for item in collection.ram.tracks:
        # draw_item uses nothing of the list itself.
        panels.RAM_UL_tracks.draw_item(
            None, bpy.context, RecordingLayout(rows), None, item, 0, None, ""
        )
    assert ("label", "ID 3") in rows and ("label", "11–24") in rows
    assert ("prop", "show_mask") in rows


def _gpu_or_skip():
    import gpu

    try:
        if hasattr(gpu, "init"):
            gpu.init()
        return gpu, gpu.types.GPUOffScreen(8, 8)
    except Exception as exc:  # 4.2 has no GPU headless
        pytest.skip(f"no headless GPU on Blender {bpy.app.version_string}: {exc}")


def test_the_preview_draws_each_visible_mask_in_its_colour(imported):
    from mathutils import Matrix

    _path, collection = imported
    gpu, _ = _gpu_or_skip()
    draw = submodule("overlay_draw")
    scene = bpy.context.scene
    scene.frame_set(13)
    collection.ram.tracks[0].show_mask = False  # track 1 hidden
    width, height = scene.render.resolution_x, scene.render.resolution_y
    offscreen = gpu.types.GPUOffScreen(width, height)
    with offscreen.bind():
        framebuffer = gpu.state.active_framebuffer_get()
        framebuffer.clear(color=(0.0, 0.0, 0.0, 0.0))
        with gpu.matrix.push_pop():
            # The preview's view space: render pixels, origin at the frame's centre.
            gpu.matrix.load_matrix(Matrix.Identity(4))
            gpu.matrix.load_projection_matrix(Matrix.Diagonal((2 / width, 2 / height, 1, 1)))
            draw._draw_masks()
        drawn = np.array(framebuffer.read_color(0, 0, width, height, 4, 0, "FLOAT").to_list())
    image = drawn[::-1]  # framebuffer rows run up, image rows down
    alpha = submodule("overlay").DEFAULT_ALPHA / 255
    for track_id in (2, 3):
        x0, y0, x1, y1 = mask_box(track_id)
        expected = np.array(track_color(track_id)) * alpha
        np.testing.assert_allclose(
            image[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2, :3],
            np.broadcast_to(expected, (y1 - y0 - 4, x1 - x0 - 4, 3)),
            atol=3 / 255,
        )
    x0, y0, x1, y1 = mask_box(1)
    assert np.all(image[y0:y1, x0:x1] == 0.0)
    assert np.all(image[5:50, :] == 0.0)  # above every mask: nothing drawn


def _learned_result(path):
    """A result whose Predictor and gate are learned (random small networks), their weights
    carried in the folder as the pipeline stores them."""
    import dataclasses
    import itertools

    from ram_core.motion.combiner import CombinerConfig
    from ram_core.motion.learned import (
        POSE_FEATURES,
        LearnedGateWeights,
        LearnedPredictorWeights,
        MLPWeights,
        gate_feature_count,
        save_learned_weights,
    )
    from ram_core.motion.predictor import PredictorConfig
    from ram_core.motion.recombine import store_learned_models

    rng = np.random.default_rng(3)

    def mlp(sizes, scale):
        pairs = itertools.pairwise(sizes)
        return MLPWeights(
            tuple((rng.normal(0, scale, (b, a)), rng.normal(0, scale, b)) for a, b in pairs), ()
        )

    source = path.parent / "weights"
    predictor_file = save_learned_weights(
        LearnedPredictorWeights(6, 4, 2, mlp([4 * POSE_FEATURES, 16, 2 * POSE_FEATURES], 0.02)),
        source / "predictor.npz",
    )
    gate_file = save_learned_weights(
        LearnedGateWeights(2, mlp([gate_feature_count(2), 8, 1], 1.0)), source / "gate.npz"
    )
    predictor = PredictorConfig(kind="learned", weights=str(predictor_file))
    combiner = CombinerConfig(gate="learned", gate_weights=str(gate_file))
    models, fields = store_learned_models(predictor, combiner, path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["learned_models"] = models
    manifest.setdefault("config", {})
    for section, values in fields.items():
        manifest["config"].setdefault(section, {}).update(
            {**dataclasses.asdict(predictor if section == "predictor" else combiner), **values}
        )
    (path / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(source)  # the result must carry what it needs
    return path


def test_rerun_of_a_result_with_learned_parts_runs_them_in_blender_as_the_cli(ext, tmp_path):
    path = _learned_result(write_result(tmp_path / "clip.ram", TRACKS, masks=True, fused=True))
    submodule("importer").import_result(path)
    cli_copy = tmp_path / "copy.ram"
    bpy.ops.ram.mark_occluded(track=1, frame_start=12, frame_end=16, occluded=True)
    shutil.copytree(path, cli_copy)
    before = root_location(armature(1))
    bpy.ops.ram.rerun_combiner(track=0)
    assert np.abs(root_location(armature(1)) - before).max() > 1e-5
    recombine_result(cli_copy)
    ours, cli = load_result(path), load_result(cli_copy)
    assert ours.layers == cli.layers == ("pipeline", "edits", "combined")
    # The edited track (the CLI re-runs every track; the other two were fused by the
    # analytic parts when this result was written, so only track 1 is the same work).
    rows = ours.tracks["track_id"] == 1
    for name in ("global_orient", "body_pose"):
        np.testing.assert_allclose(
            axis_angle_to_matrix(ours.tracks[name][rows].astype(np.float64)),
            axis_angle_to_matrix(cli.tracks[name][rows].astype(np.float64)),
            atol=1e-5,
        )
    np.testing.assert_allclose(ours.tracks["gate"][rows], cli.tracks["gate"][rows], atol=1e-6)
