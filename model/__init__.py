"""Meta-learners (baseline, PFENet, BAM) and BAM's base learner, over model.backbone."""
