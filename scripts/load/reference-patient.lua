-- The reference mediator's Patient push (tests/fixtures/reference/patient.json): a ready-made FHIR
-- Patient without id, a different CHT id per request.
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"resourceType":"Patient","identifier":[{"system":"cht","use":"official","value":"ref-%d-%d"}],"name":[{"use":"official","family":"Amina Wanjiru Njeri","given":[null]}],"gender":"female","birthDate":"1990-05-12"}', tid or 0, counter)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
-- Each wrk thread its own number (`tid`), so ids differ across threads too.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
