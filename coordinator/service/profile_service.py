"""ProfileService: where the mesh's time goes, a thin adapter over the profiler."""

from __future__ import annotations

import logging
import math
import time

import grpc

from coordinator.profile.profiler import Profiler
from coordinator.service.convert_profile import profile_to_proto
from coordinator.service.status import core_errors, invalid
from swarmmesh.v1 import profile_pb2, profile_pb2_grpc

log = logging.getLogger(__name__)

# Limits from profile.proto.
MAX_WINDOW_S = 3600.0
MAX_HISTORY_POINTS = 10_000
# A report slower than this blocks every stream on the loop for as long; say so.
SLOW_REPORT_S = 0.05


def check_request(request: profile_pb2.GetProfileRequest) -> None:
    """Raise INVALID_ARGUMENT naming the first bad field."""
    w = request.window_s
    if math.isnan(w) or w < 0:
        raise invalid(f"window_s: {w} is not a number of seconds >= 0 (0 = the coordinator's default window)")
    if w > MAX_WINDOW_S:
        raise invalid(f"window_s: {w:g} is more than {MAX_WINDOW_S:g} s")
    if request.history_points > MAX_HISTORY_POINTS:
        raise invalid(f"history_points: {request.history_points} is more than {MAX_HISTORY_POINTS}")


class ProfileService(profile_pb2_grpc.ProfileServiceServicer):
    def __init__(self, profiler: Profiler) -> None:
        self._profiler = profiler

    @core_errors
    async def GetProfile(self, request: profile_pb2.GetProfileRequest, context: grpc.aio.ServicerContext
                         ) -> profile_pb2.Profile:
        check_request(request)
        # Computed on the loop, like every other core read: the profiler keeps
        # bounded samples per window, so the cost does not grow with traffic.
        started = time.perf_counter()
        report = self._profiler.report(time.time(), window_s=request.window_s, kind=request.kind,
                                         agent_id=request.agent_id, history_points=request.history_points)
        reply = profile_to_proto(report)
        spent = time.perf_counter() - started
        if spent > SLOW_REPORT_S:
            log.warning("GetProfile took %.0f ms (window %.0f s, %d history points)", spent * 1000,
                        report.window_s, request.history_points)
        return reply
