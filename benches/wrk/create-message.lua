-- wrk script: POST a valid createMessage body with the API's headers.
-- Target: http://127.0.0.1:PORT/conversation/v1/conversations/ABC123/messages
-- wrk itself reports "Non-2xx or 3xx responses" when any answer is not 200.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["asapp-api-id"] = "bench"
wrk.headers["asapp-api-secret"] = "bench"
wrk.body = '{"text":"Hello, I would like to upgrade my internet plan to GOLD.",'
  .. '"sender":{"role":"agent","externalId":"agent-123"},'
  .. '"timestamp":"2021-11-23T12:13:14.555Z"}'
