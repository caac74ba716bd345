-- A cht-docs person push; a different _id per request (wrk's counter), as a real feed would send.
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"doc":{"_id":"load-%d-%d","type":"person","role":"patient","name":"Load Test Patient","sex":"female","date_of_birth":"1990-05-12","phone":"+254700000000","patient_id":"%d%d"}}', tid or 0, counter, tid or 0, counter)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
-- Each wrk thread its own number (`tid`), so ids differ across threads too.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
