"""A small Falcon app in Falcon's style: resource classes with `on_get`/`on_post` responders."""

import falcon


class Index:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "Hello from Falcon\n"


class Item:
    def on_get(self, req, resp, item_id):
        resp.media = {"id": item_id, "name": f"item {item_id}", "tags": ["a", "b"]}


class Form:
    def on_post(self, req, resp):
        form = req.get_media()  # a dict for application/x-www-form-urlencoded
        fields = ", ".join(f"{k}={v}" for k, v in sorted(form.items()))
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = f"form: {fields}\n"


class EchoJson:
    def on_post(self, req, resp):
        resp.media = {"received": req.get_media(), "framework": "falcon"}


class Cookie:
    def on_get(self, req, resp):
        visitor = req.cookies.get("visitor", "-")
        resp.set_cookie("flavor", "oatmeal", http_only=True, path="/", secure=False)
        resp.set_cookie("seen", "1", max_age=60, secure=False)
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = f"visitor={visitor}\n"


class Redirect:
    def on_get(self, req, resp):
        raise falcon.HTTPFound("/")


class Stream:
    def on_get(self, req, resp):
        path = req.path
        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = (f"chunk {i} of {path}\n".encode() for i in range(5))


app = falcon.App()
app.add_route("/", Index())
app.add_route("/items/{item_id:int}", Item())
app.add_route("/form", Form())
app.add_route("/json", EchoJson())
app.add_route("/cookie", Cookie())
app.add_route("/redirect", Redirect())
app.add_route("/stream", Stream())
