"""Function views for the test project; the POST views are CSRF exempt (no sessions, no tokens)."""

import json

from django.http import HttpResponse, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe


@require_safe
def index(request):
    return HttpResponse("Hello from Django\n", content_type="text/plain")


@require_safe
def item(request, item_id):
    return JsonResponse({"id": item_id, "name": f"item {item_id}", "tags": ["a", "b"]})


@csrf_exempt
@require_POST
def form(request):
    fields = ", ".join(f"{k}={v}" for k, v in sorted(request.POST.items()))
    return HttpResponse(f"form: {fields}\n", content_type="text/plain")


@csrf_exempt
@require_POST
def echo_json(request):
    return JsonResponse({"received": json.loads(request.body), "framework": "django"})


@require_safe
def cookie(request):
    resp = HttpResponse(f"visitor={request.COOKIES.get('visitor', '-')}\n", content_type="text/plain")
    resp.set_cookie("flavor", "oatmeal", httponly=True, path="/")
    resp.set_cookie("seen", "1", max_age=60)
    return resp


@require_safe
def go_home(request):
    return HttpResponseRedirect("/")


@require_safe
def stream(request):
    path = request.path
    return StreamingHttpResponse((f"chunk {i} of {path}\n" for i in range(5)), content_type="text/plain")
