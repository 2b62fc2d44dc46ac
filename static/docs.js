// Swagger UI for /api/v1/openapi.json. Requests carry the CSRF token, so "Try it out" also
// works through a signed-in browser session; refresh/logout carry the header they require.
window.addEventListener("load", function () {
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  window.ui = SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: false,  // its links inside each operation's button are controls nested in a control
    persistAuthorization: true,
    presets: [SwaggerUIBundle.presets.apis],
    onComplete: function () {  // what Swagger UI leaves unnamed for a screen reader
      document.querySelectorAll("#servers, .servers select").forEach((select) => select.setAttribute("aria-label", "Server"));
    },
    requestInterceptor: function (request) {
      request.headers["X-CSRFToken"] = csrf;
      if (/\/api\/v1\/auth\/(refresh|logout)$/.test(request.url)) {
        request.headers["X-Requested-With"] = "XMLHttpRequest";
      }
      return request;
    },
  });
});
