"""The skeleton's views: parse the body, make the two rounds of calls, answer."""
import orjson
from adrf.views import APIView
from django.http import JsonResponse
from django.urls import path

from ensemble.completion.admission import admitted

from .rounds import two_rounds


class SkeletonCompletion(APIView):
    """POST /v1/chat/completions without validation, voting or storage."""

    async def post(self, request):
        return JsonResponse(await two_rounds(request.data["messages"]))


@admitted
async def plain_completion(request):
    """The same as a plain Django async view: no DRF request, no hop to a thread for initial()."""
    return JsonResponse(await two_rounds(orjson.loads(request.body)["messages"]))


async def health(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("v1/chat/completions", admitted(SkeletonCompletion.as_view())),
    path("plain/v1/chat/completions", plain_completion),
    path("health", health),
]
