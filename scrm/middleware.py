"""Request middleware of the project."""


class ChineseFirstMiddleware:
    """Chinese unless the user picked another language with the switch (a cookie).

    Placed before LocaleMiddleware: it hides the browser's Accept-Language, so an operator on
    an English-language browser still gets the Chinese UI until they choose English.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.META.pop("HTTP_ACCEPT_LANGUAGE", None)
        return self.get_response(request)
