"""A raw Werkzeug app: a `Map` of `Rule`s dispatched to methods, `Request`/`Response` wrappers."""

import json

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response


class App:
    url_map = Map(
        [
            Rule("/", endpoint="index", methods=["GET"]),
            Rule("/items/<int:item_id>", endpoint="item", methods=["GET"]),
            Rule("/form", endpoint="form", methods=["POST"]),
            Rule("/json", endpoint="echo_json", methods=["POST"]),
            Rule("/cookie", endpoint="cookie", methods=["GET"]),
            Rule("/redirect", endpoint="go_home", methods=["GET"]),
            Rule("/stream", endpoint="stream", methods=["GET"]),
        ]
    )

    def on_index(self, request: Request) -> Response:
        return Response("Hello from Werkzeug\n")

    def on_item(self, request: Request, item_id: int) -> Response:
        body = json.dumps({"id": item_id, "name": f"item {item_id}", "tags": ["a", "b"]})
        return Response(body, mimetype="application/json")

    def on_form(self, request: Request) -> Response:
        fields = ", ".join(f"{k}={v}" for k, v in sorted(request.form.items(multi=True)))
        return Response(f"form: {fields}\n")

    def on_echo_json(self, request: Request) -> Response:
        body = json.dumps({"received": request.get_json(), "framework": "werkzeug"})
        return Response(body, mimetype="application/json")

    def on_cookie(self, request: Request) -> Response:
        resp = Response(f"visitor={request.cookies.get('visitor', '-')}\n")
        resp.set_cookie("flavor", "oatmeal", httponly=True, path="/")
        resp.set_cookie("seen", "1", max_age=60)
        return resp

    def on_go_home(self, request: Request) -> Response:
        return redirect("/", code=302)

    def on_stream(self, request: Request) -> Response:
        def generate():
            for i in range(5):
                yield f"chunk {i} of {request.path}\n"

        return Response(generate(), mimetype="text/plain")

    def dispatch(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
            return getattr(self, f"on_{endpoint}")(request, **values)
        except HTTPException as e:
            return e

    def __call__(self, environ, start_response):
        return self.dispatch(Request(environ))(environ, start_response)


app = App()
