"""Domain errors. Every error a user can cause names what is wrong and how to fix it."""


class GlassdistError(Exception):
    """Base class for errors glassdist reports to the user."""

    exit_code = 1


class SpecError(GlassdistError):
    """Bad input: a campaign file, a --set override or a command-line value.

    The CLI prints the message and exits with code 2 without writing anything.
    """

    exit_code = 2

    def __init__(self, key: str, problem: str, fix: str):
        self.key, self.problem, self.fix = key, problem, fix
        super().__init__(f"campaign key '{key}': {problem}. Fix: {fix}")

    def __reduce__(self):  # picklable: rank 0 broadcasts it to the other MPI ranks
        return type(self), (self.key, self.problem, self.fix)


class UsageError(GlassdistError):
    """Bad command-line usage or a request that cannot be honoured (exit code 2)."""

    exit_code = 2


class StaleResultsError(UsageError):
    """The campaign file changed in a way that invalidates results already in the store."""


class TaskError(GlassdistError):
    """A task (a quench, a run, a minimisation) failed; the farm records it and retries."""
