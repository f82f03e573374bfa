"""A small Pyramid app in Pyramid's style: a `Configurator`, named routes and `@view_config` views."""

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
from pyramid.response import Response
from pyramid.view import view_config


@view_config(route_name="index", request_method="GET", renderer="string")
def index(request):
    return "Hello from Pyramid\n"


@view_config(route_name="item", request_method="GET", renderer="json")
def item(request):
    item_id = int(request.matchdict["item_id"])
    return {"id": item_id, "name": f"item {item_id}", "tags": ["a", "b"]}


@view_config(route_name="form", request_method="POST")
def form(request):
    fields = ", ".join(f"{k}={v}" for k, v in sorted(request.POST.items()))
    return Response(f"form: {fields}\n", content_type="text/plain")


@view_config(route_name="json", request_method="POST", renderer="json")
def echo_json(request):
    return {"received": request.json_body, "framework": "pyramid"}


@view_config(route_name="cookie", request_method="GET")
def cookie(request):
    resp = Response(f"visitor={request.cookies.get('visitor', '-')}\n", content_type="text/plain")
    resp.set_cookie("flavor", "oatmeal", httponly=True, path="/")
    resp.set_cookie("seen", "1", max_age=60)
    return resp


@view_config(route_name="redirect", request_method="GET")
def go_home(request):
    return HTTPFound(location="/")


@view_config(route_name="stream", request_method="GET")
def stream(request):
    path = request.path

    def generate():
        for i in range(5):
            yield f"chunk {i} of {path}\n".encode()

    return Response(app_iter=generate(), content_type="text/plain")


def make_app():
    with Configurator() as config:
        config.add_route("index", "/")
        config.add_route("item", r"/items/{item_id:\d+}")
        config.add_route("form", "/form")
        config.add_route("json", "/json")
        config.add_route("cookie", "/cookie")
        config.add_route("redirect", "/redirect")
        config.add_route("stream", "/stream")
        config.scan(__name__)
        return config.make_wsgi_app()


app = make_app()
