"""glassdist: what a CNN sees in glasses (Oyama, Koyama, Kawasaki), from laptop demo to SLURM campaign."""

__version__ = "0.1.0"
