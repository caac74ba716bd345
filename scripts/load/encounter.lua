-- A whole pregnancy-visit report push (3 mapped answers, floats); a different _id per request.
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"doc":{"_id":"load-r%d","type":"data_record","form":"pregnancy_home_visit","reported_date":1732000000000,"fields":{"patient_uuid":"load-%d","vitals":{"weight":"61.25","muac":23.5},"pregnancy":{"weeks_pregnant":"24"}}}}', counter, counter)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
