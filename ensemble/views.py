"""HTML pages and plain endpoints outside the OpenAI API."""
from django.http import JsonResponse


async def health(request):
    """Liveness: the process answers. Depends on nothing else, on purpose."""
    return JsonResponse({"status": "ok"})
