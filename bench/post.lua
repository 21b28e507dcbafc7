-- POSTs BODY_BYTES (4 KB by default) to the URL; /echo streams it back.
wrk.method = "POST"
wrk.body = string.rep("k", tonumber(os.getenv("BODY_BYTES") or "4096"))
wrk.headers["Content-Type"] = "application/octet-stream"
