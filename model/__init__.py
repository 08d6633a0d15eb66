"""The architectures (baseline, PFENet, BAM and BAM's base learner) over the backbones of
model/backbone, the arch registry (registry.py) and the published-checkpoint key maps."""
