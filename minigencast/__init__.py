"""minigencast: GenCast, the diffusion ensemble weather forecaster, in readable JAX.

Price et al. 2025, "Probabilistic weather forecasting with machine learning",
Nature 637, 84-90. The specification this package follows is DeepMind's code
(google-deepmind/graphcast, commit d39de19).

Glossary of array dimensions used in docstrings (shapes in brackets):

  batch            independent examples (initial conditions)
  sample           ensemble member
  time             12 h steps; inputs are the two frames t-12h and t
  lat, lon         an equiangular grid including both poles, lat ascending, lon from 0
  level            pressure level in hPa, ascending (50 ... 1000)
  channel          variables x (time x) levels stacked in DeepMind's order (stacking.py)
  num_grid_nodes   n_lat * n_lon, node index = lat_index * n_lon + lon_index
  num_mesh_nodes   10 * 4**splits + 2 icosahedral mesh vertices
  num_edges        edges of a graph (grid2mesh, mesh2grid or mesh)
  latent           the network width (latent_size = d_model)
  num_heads        attention heads

Modules, roughly in the order of the paper:

  variables, config             what is predicted; dataclasses and presets
  data, normalization           datasets in the canonical layout; statistics
  geometry, icosahedral_mesh, graphs, spherical_harmonics, noise
                                the sphere: mesh, graphs, k-hop masks, spherical noise
  preconditioning, losses, sampler
                                EDM diffusion: c_in/c_out/c_skip, the loss, DPM-Solver++(2S)
  nn, gnn, transformer, network, stacking, checkpoint
                                the denoiser network and DeepMind's checkpoint format
  train, forecast, baselines    training loop, autoregressive ensembles, baselines
  metrics, plotting             verification (CRPS, spread/skill, REV, ...) and figures
  cli, quickstart               the `minigencast` command
"""

__version__ = "0.1.0"
