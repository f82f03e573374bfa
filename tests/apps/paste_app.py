"""A Pyramid app built by PasteDeploy (`use = call:paste_app:main` in an ini file)."""

from __future__ import annotations

import logging

from pyramid.config import Configurator
from pyramid.response import Response

log = logging.getLogger("paste_app")


def hello(request):
    return Response(
        json_body={
            "name": request.matchdict["name"],
            "greeting": request.registry.settings.get("greeting"),
            "script_name": request.script_name,
            "path_info": request.path_info,
            "server": request.environ.get("SERVER_SOFTWARE", ""),
            "threads": request.environ["wsgi.multithread"],
            "multiprocess": request.environ["wsgi.multiprocess"],
        }
    )


def main(global_config, **settings):
    with Configurator(settings=settings) as config:
        config.add_route("hello", "/hello/{name}")
        config.add_view(hello, route_name="hello")
        app = config.make_wsgi_app()
    log.warning("pyramid app built with greeting %s", settings.get("greeting"))
    return app
