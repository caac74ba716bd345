-- A whole pregnancy-visit report push (3 mapped answers, floats); a different _id per request.
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"doc":{"_id":"load-r%d-%d","type":"data_record","form":"pregnancy_home_visit","reported_date":1732000000000,"fields":{"patient_uuid":"load-%d-%d","vitals":{"weight":"61.25","muac":23.5},"pregnancy":{"weeks_pregnant":"24"}}}}', tid or 0, counter, tid or 0, counter)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
-- Each wrk thread its own number (`tid`), so ids differ across threads too.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
