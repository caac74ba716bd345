-- A cht-docs person push; a different _id per request (wrk's counter), as a real feed would send.
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"doc":{"_id":"load-%d","type":"person","role":"patient","name":"Load Test Patient","sex":"female","date_of_birth":"1990-05-12","phone":"+254700000000","patient_id":"%d"}}', counter, counter)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
