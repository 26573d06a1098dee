"""HTTP: the route table, the one dispatcher that serves it in front of BentoML's router
(:mod:`.routes`), the handlers of the service's own routes (:mod:`.handlers`) and the OpenAPI
document made from the same table (:mod:`.openapi`)."""
