"""Many files, and long videos cut into chunks, on worker processes or a Ray cluster.

::

    batch       collect inputs, map them to outputs, run_parallel: the one entry to a run
    scheduler   the driver: plans which videos are cut, keeps tasks in flight, joins chunks
    cluster     RayPool: Ray tasks on a cluster or a Ray instance started here
    executors   where tasks run: InlineExecutor (this process), LocalPool (worker processes)
    tasks       a whole file, one chunk or a join, and run_task: what a worker does with one
    join        the chunks stream-copied into one file
    workdir     the resumable work folder of a chunked video and its manifest
    chunks      a video's chunk plan, and one chunk anonymized on its own
    items       BatchItem and BatchResult

A module imports only modules listed below it.
"""

from .batch import EXECUTORS, ExecutorKind, ParallelOptions, collect_inputs, plan_outputs, run_parallel
from .items import BatchItem, BatchResult
from .scheduler import RunInfo

__all__ = ["EXECUTORS", "ExecutorKind", "ParallelOptions", "collect_inputs", "plan_outputs", "run_parallel",
           "BatchItem", "BatchResult", "RunInfo"]
