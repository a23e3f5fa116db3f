"""The stage modules, one per stage of glassdist.pipeline (its records say their order, needs and
kinds): each has ``prepare(campaign_dir, spec)`` and ``run(campaign_dir, args) -> exit code``."""
