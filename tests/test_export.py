"""Exporters: marching-cubes mesh (obj, glb) and turntable video write loadable files."""

import imageio.v2 as imageio
import pytest
import torch
import trimesh

from sdlib.nerf import (
    FieldConfig,
    HashGridConfig,
    RadianceField,
    RenderConfig,
    extract_mesh,
    ffmpeg_available,
    save_mesh,
    turntable,
)


@pytest.fixture(scope="module")
def blob_field():
    torch.manual_seed(0)
    grid = HashGridConfig(n_levels=4, log2_table_size=10, base_resolution=4)
    return RadianceField(FieldConfig(grid=grid, hidden_dim=16)).eval()


def test_mesh_of_the_blob_is_a_sphere(blob_field, tmp_path):
    # sigma = softplus(10 (1 - r / 0.5) + mlp) = 5  ->  r ~ 0.5 (1 - 4.993 / 10) = 0.25
    mesh = extract_mesh(blob_field, resolution=48, threshold=5.0)
    radii = torch.as_tensor(mesh.vertices).norm(dim=-1)
    assert len(mesh.faces) > 100
    assert (radii - 0.25).abs().max() < 0.05
    # faces are outward: the mesh's volume is positive, close to 4/3 pi r^3
    assert mesh.volume == pytest.approx(4 / 3 * torch.pi * 0.25**3, rel=0.3)
    for suffix in (".obj", ".glb"):
        path = save_mesh(mesh, tmp_path / f"blob{suffix}")
        loaded = trimesh.load(path, force="mesh")
        assert len(loaded.faces) == len(mesh.faces)


def test_mesh_rejects_a_threshold_outside_the_density_range(blob_field):
    with pytest.raises(ValueError, match="threshold"):
        extract_mesh(blob_field, resolution=16, threshold=1e6)


def test_turntable_writes_an_mp4(blob_field, tmp_path):
    """imageio-ffmpeg is a dependency (its wheel ships ffmpeg): turntables are mp4 everywhere."""
    assert ffmpeg_available(), "imageio-ffmpeg is a dependency of sdlib; install it"
    path = turntable(blob_field, tmp_path / "turn.gif", n_frames=3, height=12, width=10,
                     config=RenderConfig(n_samples=16))
    assert path == tmp_path / "turn.mp4" and path.read_bytes()[4:8] == b"ftyp"  # ISO media
    frames = imageio.mimread(path)
    assert len(frames) == 3
    assert frames[0].shape[:2] == (12, 30)  # RGB | depth | normals side by side


def test_turntable_falls_back_to_gif_without_ffmpeg(blob_field, tmp_path, monkeypatch):
    import sdlib.nerf.export as export

    monkeypatch.setattr(export, "ffmpeg_available", lambda: False)
    path = turntable(blob_field, tmp_path / "turn.mp4", n_frames=3, height=12, width=10,
                     config=RenderConfig(n_samples=16))
    assert path == tmp_path / "turn.gif" and path.read_bytes()[:4] == b"GIF8"
    assert len(imageio.mimread(path)) == 3


def test_mesh_from_density_fills_hollow_solids_and_drops_floaters():
    from sdlib.nerf import mesh_from_density

    axis = torch.linspace(-1, 1, 48)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)
    r = points.norm(dim=-1)
    # a hollow shell 0.3 < r < 0.5 (what a NeRF's unseen inside looks like) and a floater
    sigma = torch.where((r > 0.3) & (r < 0.5), 50.0, 0.0)
    sigma = torch.where((points - torch.tensor([0.8, 0.8, 0.8])).norm(dim=-1) < 0.06, 50.0, sigma)
    raw = mesh_from_density(sigma, 1.0, 10.0, fill_holes=False, min_component_fraction=0.0)
    clean = mesh_from_density(sigma, 1.0, 10.0)
    raw_r = torch.as_tensor(raw.vertices).norm(dim=-1)
    clean_r = torch.as_tensor(clean.vertices).norm(dim=-1)
    assert (raw_r < 0.35).any() and (raw_r > 1.2).any()  # inner shell and floater present
    assert (clean_r - 0.5).abs().max() < 0.05  # only the outer sphere is left


def test_depth_normals_of_a_plane_and_a_turntable_without_field_normals(blob_field, tmp_path):
    from sdlib.nerf.export import depth_normals

    u = torch.arange(8.0)
    flat = depth_normals(torch.full((1, 8, 8), 2.0))
    assert torch.allclose(flat, torch.tensor([0.0, 0.0, 1.0]).expand(1, 8, 8, 3))
    tilted = depth_normals((0.5 * u / 8).expand(1, 8, 8))  # depth grows to the right
    expected = torch.nn.functional.normalize(torch.tensor([-0.5, 0.0, 1.0]), dim=0)
    assert torch.allclose(tilted, expected.expand(1, 8, 8, 3), atol=1e-6)
    path = turntable(blob_field, tmp_path / "turn.mp4", n_frames=2, height=12, width=10,
                     config=RenderConfig(n_samples=16, compute_normals=False))
    normals_panel = imageio.mimread(path)[0][:, 20:]
    assert normals_panel.std() > 5  # shaded by the depth's normals, not blank
