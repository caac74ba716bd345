-- The reference mediator's Encounter push (tests/fixtures/reference/encounter.json): class as a
-- string, subject `Patient/?identifier=…`, no id; a different patient per request.
local counter = 0
request = function()
  counter = counter + 1
  local id = string.format("ref-%d-%d", tid or 0, counter)
  local body = string.format('{"resourceType":"Encounter","identifier":[{"system":"cht","use":"official","value":"%s"}],"status":"finished","class":"outpatient","type":[{"text":"Community health worker visit"}],"subject":{"reference":"Patient/?identifier=%s"},"participant":[{"type":[{"text":"Community health worker"}]}]}', id, id)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
-- Each wrk thread its own number (`tid`), so ids differ across threads too.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
